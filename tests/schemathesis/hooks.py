"""Schemathesis hooks for the bank's API (loaded by run.sh through SCHEMATHESIS_HOOKS).

Authentication: the first request that needs a session opens an account at bank 1 (a fresh
valid CPF), deposits money into it and signs in; every request then carries that token.
`DELETE /api/v1/sessions/current` would end it for everyone, so that one operation gets a
throwaway session from a small pool minted at the start (sign-ins later in the run could meet
the failed-sign-in throttle that schemathesis's own wrong passwords provoke; refused sign-ins
are documented 401/429 answers, but the hook needs working sessions).

The payee: bank 2 gets an account whose e-mail key is the document's example key
(`ana@example.com`), so the transfer examples are cross-bank Pix transfers.
"""

import json
import os
import random
import threading
import urllib.request

import schemathesis

BANK = os.environ["BANK_URL"]
PEER = os.environ["PEER_BANK_URL"]
PASSWORD = "schemathesis-pass-1"
THROWAWAY_ACCOUNTS = 4
SESSIONS_PER_SPARE = 10  # below the bank's 16 live sessions per account

_lock = threading.Lock()
_state = {}
_rng = random.Random(os.getpid())


def _cpf():
    """A CPF with valid check digits, not all digits equal."""
    while True:
        base = [_rng.randrange(10) for _ in range(9)]
        if len(set(base)) > 1:
            break
    digits = list(base)
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(digits[:length]))
        check = (total * 10) % 11
        digits.append(0 if check == 10 else check)
    return "".join(map(str, digits))


def _call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def _customer(base, email, name):
    """Opens an individual account at `base` and returns its session token."""
    account = {
        "kind": "individual",
        "holders": [{"name": name, "document": _cpf()}],
        "email": email,
        "phone": "+5575999991234",
        "password": PASSWORD,
    }
    _call(base, "POST", "/api/v1/accounts", account)
    return _call(base, "POST", "/api/v1/sessions", {"email": email, "password": PASSWORD})["token"]


def _setup():
    tag = _rng.randrange(10**9)
    email = f"fuzz-{tag}@example.com"
    token = _customer(BANK, email, "Fuzz Payer")
    _call(BANK, "POST", "/api/v1/deposits", {"amount_cents": 50_000_000, "method": "cash"}, token)
    try:
        payee = _customer(PEER, "ana@example.com", "Ana Lima")
        _call(PEER, "POST", "/api/v1/pix-keys", {"type": "email"}, payee)
    except urllib.error.HTTPError:
        pass  # a second run against the same consortium: the payee is there already
    # Throwaway sessions belong to accounts of their own: a bank keeps at most 16 live sessions
    # per account (the oldest ends), so minting them on the payer would end the payer's session.
    spare = []
    for n in range(THROWAWAY_ACCOUNTS):
        spare_email = f"fuzz-{tag}-spare{n}@example.com"
        spare.append(_customer(BANK, spare_email, "Fuzz Spare"))
        spare += [
            _call(BANK, "POST", "/api/v1/sessions", {"email": spare_email, "password": PASSWORD})["token"]
            for _ in range(SESSIONS_PER_SPARE - 1)
        ]
    _state.update(token=token, spare=spare)


@schemathesis.auth()
class BankSession:
    def get(self, case, ctx):
        with _lock:
            if "token" not in _state:
                _setup()
            return _state["token"]

    def set(self, case, data, ctx):
        token = data
        if case.operation.method.upper() == "DELETE" and case.operation.path == "/api/v1/sessions/current":
            with _lock:
                if _state["spare"]:
                    token = _state["spare"].pop()
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"
