# The customers' pages in English. Every id here exists in every language (a unit test checks
# it); docs/i18n.md says how to add one. Money is formatted by the code (R$ 1.234,56) and passed
# in as text; counts are passed as numbers so plural rules apply.

## Around every page

lang-name-pt-BR = Português
lang-name-en = English
lang-switch = Language
shell-skip = Skip to content
shell-signed-in-as = Signed in as
shell-nav = Main
shell-times = Times are Brasília time.
nav-dashboard = Dashboard
nav-pix = Pix
nav-packet = Packet
nav-deposit = Deposit
nav-withdraw = Withdraw
nav-statement = Statement
nav-receive = Receive
nav-consortium = Consortium
nav-sign-out = Sign out
nav-sign-in = Sign in
nav-sign-up = Open an account

## Page titles

title-sign-in = Sign in
title-sign-up = Open an account
title-dashboard = Dashboard
title-statement = Statement
title-deposit = Deposit
title-withdraw = Withdraw
title-pix = Pix
title-pix-confirm = Confirm the Pix
title-transfer = Transfer
title-packet = Packet
title-receive = Receive
title-consortium = Consortium
title-trouble = Something went wrong
title-no-transfer = No such transfer
title-sign-out-failed = Could not sign out

## Flashes after a redirect

notice-signup = Your account is open. Welcome!
notice-signup-nokey = Your account is open, but its CPF/CNPJ Pix key could not be registered; see Receive.
notice-deposit = Deposit done.
notice-withdrawal = Withdrawal done.
notice-key = Key registered.
notice-logout = You are signed out.

## Shared pieces

form-nothing-done = Nothing was done.
message-back = Back to the dashboard
try-again = Try again.
amount-label = Amount (R$)
amount-example = For example 1234,56 or 1234.56.
available-now = Available now:
status-completed = completed
status-pending = pending
status-failed = failed
kind-individual = individual
kind-company = company
kind-joint = joint
col-when = When
col-what = What
col-amount = Amount
col-status = Status
col-bank = Bank
col-account = Account
col-kind = Kind
col-available = Available
col-blocked = Blocked
col-from = From
col-to = To
col-state = State
col-source = Source
col-total = Total
col-id = Id
col-name = Name
col-address = Address
col-clock = Clock

## Sign in and sign up

login-heading = Sign in to { $bank }
login-email = E-mail
login-password = Password
login-submit = Sign in
login-no-account = No account here?
login-open = Open an account
signup-heading = Open an account at { $bank }
signup-kind = Kind of account
signup-kind-individual = Individual (CPF)
signup-kind-company = Company (CNPJ)
signup-kind-joint = Joint (two people, each with a CPF)
signup-name = Name (person or company)
signup-document = CPF or CNPJ
signup-document-hint = With or without punctuation, e.g. 529.982.247-25.
signup-second = Second holder (joint accounts only)
signup-name-2 = Name
signup-document-2 = CPF
signup-email = E-mail
signup-phone = Phone
signup-phone-hint = Brazilian number, e.g. +55 75 99999-1234.
signup-password = Password
signup-password-hint = At least { $min ->
    [one] one character
   *[other] { $min } characters
}.
signup-submit = Open the account

## Dashboard

dashboard-hello = Hello, { $name }
dashboard-account = Account { $number }
dashboard-available = Available
dashboard-blocked = Blocked (held for transfers in progress)
dashboard-balance = Balance
dashboard-send-pix = Send a Pix
dashboard-accounts = My accounts across the consortium
dashboard-unreachable = { $count ->
    [one] Could not reach this bank: { $banks }. Accounts there are not listed.
   *[other] Could not reach these { $count } banks: { $banks }. Accounts there are not listed.
}
dashboard-recent = Recent activity
dashboard-full-statement = Full statement

## Statement lines, in the customer's words

entries-none = No activity yet.
entry-deposit = Deposit
entry-deposit-cash = Cash deposit
entry-deposit-boleto = Deposit by boleto
entry-deposit-qr = Deposit by QR code
entry-withdrawal = Withdrawal
entry-pix-sent = Pix sent to { $counterparty }
entry-pix-sent-plain = Pix sent
entry-pix-received = Pix received from { $counterparty }
entry-pix-received-plain = Pix received
entry-refund-sent = Refund sent to { $counterparty }
entry-refund-sent-plain = Refund sent
entry-refund-received = Refund from { $counterparty }
entry-refund-received-plain = Refund received
entry-other-out = Money out · { $counterparty }
entry-other-out-plain = Money out
entry-other-in = Money in · { $counterparty }
entry-other-in-plain = Money in
statement-heading = Statement of account { $number }
statement-shown = { $count ->
    [0] No entries on this page.
    [one] One entry on this page.
   *[other] { $count } entries on this page.
}
statement-newest = Newest
statement-older = Older

## Deposit and withdraw

money-deposit = Deposit
money-withdraw = Withdraw
money-how = How
method-cash = Cash
method-boleto = Boleto
method-qr = QR code

## Pix

pix-heading = Send a Pix
pix-key = Pix key of the receiver
pix-key-hint = CPF, CNPJ, e-mail, phone (+55…) or random key.
pix-continue = Continue
confirm-heading = Confirm the Pix
confirm-sending = You are sending
confirm-to = to
confirm-name = Name
confirm-document = Document
confirm-bank = Bank
confirm-key = Key
confirm-send = Send { $amount }
confirm-cancel = Cancel

## A transfer's page

transfer-heading = Transfer
transfer-done = Done: the money has arrived.
transfer-nothing-moved = Nothing moved.
transfer-in-progress = Still in progress.
transfer-refresh = Refresh to see where it stands.
transfer-fact-id = Id
transfer-fact-when = When
transfer-fact-total = Total
transfer-legs = { $count ->
    [one] One leg
   *[other] { $count } legs
}
transfer-to-key = (key { $key })
failure-insufficient = A source did not have enough money.
failure-bank-unavailable = A bank could not be reached.
failure-expired = A bank answered too late, so the transfer was called off.
failure-unknown-key = No account in the consortium has that Pix key.
failure-refused = A bank refused the transfer: { $detail }.

## Packet

packet-heading = Packet of transfers
packet-intro = Every leg goes through or none does. Choose each leg's source among your accounts in every bank.
packet-leg = Leg { $n }
packet-from = From
packet-to = To (Pix key)
packet-totals = Total per source
packet-over = more than available: the packet would fail whole
packet-ok = ok
packet-add = Add a leg
packet-review = Review totals
packet-send = Send the packet
packet-source = { $bank } · { $number } ({ $available } available)
packet-choose-source = Choose a source among your accounts.
packet-fix-legs = Some legs need fixing (see below).
packet-fill-one = Fill in at least one leg: a source, a Pix key and an amount.

## Receive

receive-heading = Receive
receive-keys = My Pix keys
receive-key-count = { $count ->
    [0] No keys yet.
    [one] One key.
   *[other] { $count } keys.
}
receive-register = Register a new key
receive-type-email = My e-mail
receive-type-phone = My phone
receive-type-random = A random key
receive-register-submit = Register
receive-choose-type = Choose a key type: e-mail, phone or random.
receive-code-heading = Pix copia e cola
receive-key = Key
receive-amount = Amount (R$, optional)
receive-make = Make the code
receive-code = Code
receive-code-for = Code for { $amount }
receive-qr-label = QR code of the Pix payload
keykind-cpf = CPF
keykind-cnpj = CNPJ
keykind-email = e-mail
keykind-phone = phone
keykind-random = random key

## Consortium

consortium-heading = Consortium status
consortium-this-bank = This bank
consortium-mode = Mode
consortium-in-doubt = In-doubt transactions
consortium-members = Members
consortium-ring = Ring
consortium-unreadable = The status could not be read: { $reason }
mode-token-ring = token ring (token-ring)
mode-concurrent = concurrent (concurrent)
member-up = up
member-suspected = suspected
member-unknown = unknown
ring-epoch = Epoch
ring-holder = Last known holder
ring-this-bank = This bank
ring-last-here = Token last here
ring-visits = Visits per second
ring-waiting = Transfers waiting for the token
ring-not-heard = Not heard from
ring-token-ring = Token ring
ring-off = off: every bank starts its cross-bank work at once
ring-bank = bank { $id }
ring-not-yet = not yet
ring-ms-ago = { $ms } ms ago
role-idle = idle
role-holding = holding
role-passing = passing
role-pre-candidate = pre-candidate
role-candidate = candidate
clock-ahead = { $ms } ms ahead: disagrees, cross-bank work with it refused
clock-behind = { $ms } ms behind: disagrees, cross-bank work with it refused
clock-agrees = agrees ({ $offset } ms ± { $uncertainty } ms)

## A form posted from another site

csrf-title = Refused
csrf-heading = Request refused
csrf-body = This form was sent from another site ({ $why }). Nothing was changed.
csrf-go = Go to your bank
csrf-why-same-site = another origin of this site
csrf-why-cross-site = a cross-site request
csrf-why-origin = the Origin is not this bank

## Pix receipt (comprovante) and refund (devolução)
title-receipt = Pix receipt
title-refund-receipt = Pix refund receipt
title-no-pix = No such Pix
receipt-and-refund = Receipt and refund
receipt-when = Date and time
receipt-e2e = End-to-end id
receipt-refund-of = Refund of
receipt-reason = Reason
receipt-description = Description
receipt-refunded = Refunded
receipt-paid-by = Paid by
receipt-received-by = Received by
receipt-name = Name
receipt-document = Document
receipt-bank = Bank
receipt-key = Pix key
receipt-bank-code = { $bank } · institution { $code }
receipt-transfer-leg = Transfer { $id }, leg { $leg }.
refund-heading = Refund this Pix
refund-may-send = You may send back to the payer, in one or more refunds within 90 days, up to
refund-amount = Amount (R$)
refund-reason = Reason (optional)
refund-submit = Refund

## The seed-compatible API's warning on the consortium page
consortium-seed-compat-on = SEED-COMPATIBLE API ON: the original system's routes answer here without authentication — anyone who can reach this bank can move any customer's money; for demonstrations on a trusted network only
