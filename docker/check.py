#!/usr/bin/env python3
"""Customer steps against the compose consortium's published ports (docker/test.sh runs them).

  check.py pix        open accounts at banks 1 and 2, deposit, send a Pix by key from 1 to 2
  check.py load N     send N small Pix from bank 1 to bank 2 (failures allowed: a bank is killed)
  check.py balances   print every account's available balance seen through the published ports
"""
import json, sys, time, urllib.request, urllib.error

BANKS = {i: f"http://127.0.0.1:{8080 + i}" for i in range(1, 6)}
STATE = "target/docker-test/customers.json"
PASSWORD = "a long test passphrase"


def call(method, url, body=None, token=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def cpf(base):
    """A valid CPF from a 9-digit base (the check digits of the Receita Federal rule)."""
    digits = [int(c) for c in f"{base:09d}"]
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1)))
        digits.append((total * 10 % 11) % 10)
    return "".join(map(str, digits))


def customer(bank, base, name):
    email = f"c{base}-{int(time.time())}@example.com"
    account = {"kind": "individual", "holders": [{"name": name, "document": cpf(base)}],
               "email": email, "phone": "+5575999990000", "password": PASSWORD}
    status, body = call("POST", f"{BANKS[bank]}/api/v1/accounts", account)
    assert status == 201, (status, body)
    status, session = call("POST", f"{BANKS[bank]}/api/v1/sessions", {"email": email, "password": PASSWORD})
    assert status == 201, (status, session)
    return {"bank": bank, "token": session["token"], "number": body["number"]}


def pix(payer, key, cents):
    legs = {"legs": [{"to": {"key": key}, "amount_cents": cents}]}
    return call("POST", f"{BANKS[payer['bank']]}/api/v1/transfers", legs, payer["token"])


def available(who):
    status, me = call("GET", f"{BANKS[who['bank']]}/api/v1/me", token=who["token"])
    assert status == 200, (status, me)
    return me["balance"]["available_cents"]


def first_pix():
    base = int(time.time()) % 100_000_000
    ana, bia = customer(1, base, "Ana Souza"), customer(2, base + 1, "Bia Lima")
    status, entry = call("POST", f"{BANKS[1]}/api/v1/deposits", {"amount_cents": 100_000, "method": "cash"}, ana["token"])
    assert status == 201, (status, entry)
    status, key = call("POST", f"{BANKS[2]}/api/v1/pix-keys", {"type": "random"}, bia["token"])
    assert status == 201, (status, key)
    bia["key"] = key["key"]
    for _ in range(100):  # the key reaches bank 1's directory by replication
        status, transfer = pix(ana, bia["key"], 2_500)
        if status == 201:
            break
        time.sleep(0.1)
    assert transfer.get("status") == "completed", (status, transfer)
    assert available(bia) == 2_500, available(bia)
    json.dump({"ana": ana, "bia": bia}, open(STATE, "w"))
    print(f"a Pix from bank 1 to bank 2 through ports 8081/8082: {transfer['id']} completed")


def load(count):
    state = json.load(open(STATE))
    outcomes = {}
    for _ in range(count):
        try:
            status, transfer = pix(state["ana"], state["bia"]["key"], 1)
            outcome = transfer.get("status", transfer.get("code", status)) if isinstance(transfer, dict) else status
        except Exception as error:  # a killed bank: connection refused or reset
            outcome = type(error).__name__
            time.sleep(0.05)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"load: {outcomes}")


def balances():
    state = json.load(open(STATE))
    for _ in range(100):  # a restarted bank may still be starting
        try:
            print(json.dumps({name: available(who) for name, who in state.items()}, sort_keys=True))
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("the banks never answered")


if __name__ == "__main__":
    {"pix": first_pix, "load": lambda: load(int(sys.argv[2])), "balances": balances}[sys.argv[1]]()
