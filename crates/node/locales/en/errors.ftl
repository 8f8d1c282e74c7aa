# Refusals in words for a customer. The core's errors carry English sentences for the API;
# web/words.rs recognises them and picks one of these instead (a unit test ties each pattern to
# the error the core really builds).

err-internal = Something went wrong on our side; nothing was changed. Try again.
err-insufficient = Not enough money: { $available } available, { $requested } asked.
err-unknown-key = No account in the consortium has the Pix key { $key }.
err-overloaded = The bank is busy right now; nothing was changed. Try again shortly.
err-sign-ins = Too many failed sign-ins. To protect your account, wait { $seconds ->
    [one] one second
   *[other] { $seconds } seconds
} before trying again.
err-key-lookups = Too many lookups of keys nobody has. Check the key, and wait { $seconds ->
    [one] one second
   *[other] { $seconds } seconds
} before looking up another.
err-bank-unavailable = A bank could not be reached, so nothing was done. Try again shortly.
err-idempotency = This form was already sent with other values; open it again.
err-amount-empty = Type an amount, e.g. 1234,56.
err-amount-positive = The amount must be greater than zero.
err-amount-too-big = One operation moves at most R$ 1.000.000,00.
err-amount-invalid = “{ $input }” is not an amount of money; type it like 1234,56.
err-cpf-invalid = “{ $input }” is not a valid CPF.
err-cnpj-invalid = “{ $input }” is not a valid CNPJ.
err-document-invalid = “{ $input }” is not a valid CPF or CNPJ.
err-email-invalid = “{ $input }” is not a valid e-mail address.
err-phone-invalid = “{ $input }” is not a valid Brazilian phone number (e.g. +55 75 99999-1234).
err-key-invalid = “{ $input }” is not a Pix key (CPF, CNPJ, e-mail, phone or random key).
err-kind-invalid = “{ $input }” is not a kind of account (individual, company, joint).
err-method-invalid = “{ $input }” is not a way to deposit (cash, boleto, QR code).
err-name-empty = Type the holder's name.
err-name-long = A holder's name has at most { $max } characters.
err-name-invisible = The name has invisible or control characters; type it again.
err-password-length = The password must have between { $min } and { $max } characters.
err-password-common = This password is one of the most common ones, which guessers try first; choose another.
err-sign-in-wrong = Wrong e-mail or password.
err-email-taken = An account with the e-mail { $email } already exists at this bank.
err-key-taken = The Pix key { $key } is already registered.
err-key-limit = An account has at most { $max } Pix keys.
err-key-joint = A joint account has no CPF/CNPJ key.
err-in-leg = Leg { $n }: { $reason }
err-self-transfer = the destination is your own account.
err-not-yours = You may not spend from account { $account }.
err-bank-not-member = Bank { $bank } is not a member of this consortium.
err-account-unknown = Account { $account } does not exist.
err-transfer-unknown = This transfer does not exist, or is not yours.
err-transfer-id = A transfer id is a UUID.
err-individual-holders = An individual account has exactly one holder, with a CPF.
err-company-holders = A company account has exactly one holder, with a CNPJ.
err-joint-holders = A joint account has two or more holders, each with a CPF.
err-joint-max = A joint account has at most { $max } holders.
err-joint-distinct = The holders of a joint account must be different people.
err-deposit-limit = This deposit would take the balance over the account's limit.
err-receive-limit = Account { $account } cannot receive this much money.
err-legs-count = A transfer has between 1 and { $max } legs.
err-account-gone = The signed-in account no longer exists.
err-shutting-down = The bank is shutting down; try again shortly.
err-key-not-everywhere = The key could not be registered at every bank; try again shortly.
err-no-numbers = This bank has no account numbers left.
err-other = The bank refused: { $detail }.
