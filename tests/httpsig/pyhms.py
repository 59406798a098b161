"""The independent RFC 9421 client of tests/httpsig.rs: Python's `http-message-signatures`
(PyPI) signs requests for ccs-endpoint to verify, and verifies what ccs-endpoint signed.

    python pyhms.py sign   < cases.json   -> one JSON object of headers per case
    python pyhms.py verify < cases.json   -> "ok" or the library's refusal, per case
    python pyhms.py send   < cases.json   -> per case, a JSON list of {"status", "body"}: the
                                             request signed (unless "unsigned") and sent over
                                             HTTPS (http.client, verified against "cafile")
                                             "repeat" times (default 1); "send_body" replaces
                                             the body after signing

A case: method, url, headers (list of pairs), body (text), keyid, secret (base64), alg, and for
signing created, nonce, label, components.
"""
import base64
import datetime
import http.client
import ssl
import urllib.parse
import hashlib
import hmac
import json
import sys

from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)
from http_message_signatures.algorithms import HTTPSignatureAlgorithm


class _Hmac(HTTPSignatureAlgorithm):
    """HMAC with another hash: the library ships hmac-sha256 and needs no registration."""

    digest = None

    def __init__(self, public_key=None, private_key=None, password=None):
        self.key = private_key if private_key is not None else public_key

    def sign(self, message: bytes):
        return hmac.new(self.key, message, self.digest).digest()

    def verify(self, signature: bytes, message: bytes):
        if not hmac.compare_digest(self.sign(message), signature):
            raise Exception("bad HMAC")


class HMAC_SHA384(_Hmac):
    algorithm_id = "hmac-sha384"
    digest = hashlib.sha384


class HMAC_SHA512(_Hmac):
    algorithm_id = "hmac-sha512"
    digest = hashlib.sha512


ALGORITHMS = {"hmac-sha256": algorithms.HMAC_SHA256, "hmac-sha384": HMAC_SHA384, "hmac-sha512": HMAC_SHA512}


class Headers:
    """Field lines in order; names compared without case."""

    def __init__(self, pairs):
        self.pairs = [tuple(p) for p in pairs]

    def items(self):
        return list(self.pairs)

    def __iter__(self):
        return iter(dict.fromkeys(n for n, _ in self.pairs))

    def __contains__(self, name):
        return any(n.lower() == name.lower() for n, _ in self.pairs)

    def __setitem__(self, name, value):
        del self[name]
        self.pairs.append((name, value))

    def __delitem__(self, name):
        self.pairs = [(n, v) for n, v in self.pairs if n.lower() != name.lower()]


class Request:
    def __init__(self, case):
        self.method = case["method"]
        self.url = case["url"]
        self.headers = Headers(case["headers"])


class Keys(HTTPSignatureKeyResolver):
    def __init__(self, secret):
        self.secret = secret

    def resolve_private_key(self, key_id):
        return self.secret

    def resolve_public_key(self, key_id):
        return self.secret


def sign(case, request, algorithm, secret, label, body):
    """Signs `request` in place as `case` says (Content-Digest too, when there is a body)."""
    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=Keys(secret))
    signer.sign(
        request,
        key_id=case["keyid"],
        created=datetime.datetime.fromtimestamp(case["created"], datetime.timezone.utc),
        nonce=case["nonce"],
        label=label,
        covered_component_ids=case["components"],
        body=body if body else None,
    )


def send(case, request, body):
    """Sends `request` as signed, `repeat` times; the answers."""
    url = urllib.parse.urlsplit(case["url"])
    context = ssl.create_default_context(cafile=case["cafile"])
    answers = []
    for _ in range(case.get("repeat", 1)):
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
        path = url.path + (("?" + url.query) if url.query else "")
        headers = {}
        for name, value in request.headers.items():
            headers[name] = value
        sent = case.get("send_body", case["body"]).encode()
        conn.request(request.method, path, body=sent if sent else None, headers=headers)
        response = conn.getresponse()
        answers.append({"status": response.status, "body": response.read().decode()})
        conn.close()
    print(json.dumps(answers))


def main():
    mode = sys.argv[1]
    for case in json.load(sys.stdin):
        secret = base64.b64decode(case["secret"])
        algorithm = ALGORITHMS[case["alg"]]
        request = Request(case)
        body = case["body"].encode()
        if mode == "send":
            if not case.get("unsigned"):
                # The library covers content-digest whenever it is given a body.
                covered = body if body and "content-digest" in case["components"] else b""
                sign(case, request, algorithm, secret, "sig1", covered)
            send(case, request, body)
        elif mode == "sign":
            sign(case, request, algorithm, secret, case["label"], body)
            print(json.dumps(request.headers.items()))
        else:
            verifier = HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=Keys(secret))
            try:
                verifier.verify(request, body=body, max_age=datetime.timedelta(minutes=5))
                print("ok")
            except Exception as e:  # the refusal, for the test to show
                print(f"refused: {type(e).__name__}: {e}")


main()
