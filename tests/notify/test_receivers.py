"""The notification receivers (receivers.py) against clients written here with the standard library.

Run with `python3 -m pytest -q tests/notify`.
"""

import base64
import json
import os
import queue
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from standardwebhooks.webhooks import Webhook

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "receivers.py")
SECRET = "whsec_" + base64.b64encode(b"chainr notify test secret 32 by").decode()
PASSWORD = "correct horse battery staple"


class Receivers:
    """The script as a subprocess: its ports and the record lines it prints."""

    def __init__(self, directory, env):
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, "--dir", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.lines.get(timeout=10)
        assert self.ready.get("ready") is True, self.ready
        self.seen = []

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def url(self, name, path="/hook"):
        return f"http://127.0.0.1:{self.ready[name]}{path}"

    def wait(self, match, since=0, timeout=5):
        """The first record from index `since` on that matches (lines from different
        connections can come in any order)."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.seen[since:]:
                if match(rec):
                    return rec
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching record: {self.seen[since:]}")
            try:
                self.seen.append(self.lines.get(timeout=remaining))
            except queue.Empty:
                pass

    def record(self, receiver, msg_id, attempt=1):
        """The record of the `attempt`-th request with this id at this receiver."""
        return self.wait(lambda r: (r["receiver"], r["id"], r["attempt"]) == (receiver, msg_id, attempt))

    def mark(self):
        """The index of the next record, for `wait(..., since=...)`."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return len(self.seen)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(tmp_path_factory, **extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("WEBHOOK_SECRET", "SMTP_PASSWORD")}
    env.update(WEBHOOK_SECRET=SECRET, **extra_env)
    return Receivers(tmp_path_factory.mktemp("receivers"), env)


@pytest.fixture(scope="module")
def rx(tmp_path_factory):
    receivers = start(tmp_path_factory, SMTP_PASSWORD=PASSWORD)
    yield receivers
    assert receivers.stop() == 0


def post(url, body, headers=None, timeout=5):
    """(status, headers, body text) of a POST; HTTP error statuses are answers too."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def signed(msg_id, body, when=None, secret=SECRET):
    data = json.dumps(body).encode()
    when = when or datetime.now(tz=timezone.utc)
    return data, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, data),
    }


EVENT = {"type": "run.finished", "data": {"run": "r-1", "pipeline": "ci", "outcome": "failed"}}


# --- webhook ----------------------------------------------------------------------------------


def test_ready_line(rx):
    for name in ("webhook", "slack", "flaky", "ratelimit", "silent", "smtp"):
        assert isinstance(rx.ready[name], int) and rx.ready[name] > 0
    assert len({rx.ready[n] for n in ("webhook", "slack", "flaky", "ratelimit", "silent", "smtp")}) == 6
    assert rx.ready["smtp_ca"].endswith("smtp-cert.pem") and os.path.exists(rx.ready["smtp_ca"])
    assert os.path.exists(os.path.join(os.path.dirname(rx.ready["smtp_ca"]), "smtp-key.pem"))


def test_webhook_signed_accepted(rx):
    data, headers = signed("msg_ok_1", EVENT)
    status, _, _ = post(rx.url("webhook", "/any/path"), data, headers)
    assert status == 204
    rec = rx.record("webhook", "msg_ok_1")
    assert rec["status"] == 204 and rec["verified"] is True and rec["error"] is None
    assert rec["body"] == EVENT and rec["path"] == "/any/path" and rec["method"] == "POST"
    assert rec["headers"]["webhook-signature"] == headers["webhook-signature"]
    assert rec["headers"]["content-type"] == "application/json"
    assert abs(rec["at"] - time.time()) < 5


def test_webhook_tampered_refused(rx):
    data, headers = signed("msg_tampered", EVENT)
    tampered = data.replace(b"failed", b"passed")
    status, _, text = post(rx.url("webhook"), tampered, headers)
    assert status == 400 and "signature" in text.lower()
    rec = rx.record("webhook", "msg_tampered")
    assert rec["status"] == 400 and rec["verified"] is False
    assert rec["error"] == "No matching signature found"
    assert rec["body"]["data"]["outcome"] == "passed"


def test_webhook_wrong_secret_stale_and_unsigned_refused(rx):
    other = "whsec_" + base64.b64encode(b"some other secret of 32 bytes!!!").decode()
    data, headers = signed("msg_other_secret", EVENT, secret=other)
    assert post(rx.url("webhook"), data, headers)[0] == 400
    assert rx.record("webhook", "msg_other_secret")["verified"] is False

    old = datetime.now(tz=timezone.utc) - timedelta(minutes=10)
    data, headers = signed("msg_stale", EVENT, when=old)
    assert post(rx.url("webhook"), data, headers)[0] == 400
    assert rx.record("webhook", "msg_stale")["error"] == "Message timestamp too old"

    since = rx.mark()
    assert post(rx.url("webhook"), EVENT)[0] == 400
    rec = rx.wait(lambda r: r["receiver"] == "webhook" and r["id"] is None, since)
    assert rec["verified"] is False and rec["error"] == "Missing required headers"


def test_webhook_attempts_count_per_id(rx):
    for attempt in (1, 2):
        data, headers = signed("msg_twice", EVENT)
        assert post(rx.url("webhook"), data, headers)[0] == 204
        assert rx.record("webhook", "msg_twice", attempt)["status"] == 204


# --- slack ------------------------------------------------------------------------------------

GOOD_SLACK = {
    "text": "ci #42 failed",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "ci #42 failed", "emoji": True}},
        {
            "type": "section",
            "block_id": "summary",
            "text": {"type": "mrkdwn", "text": "*ci* run `r-42` failed after 3m 12s"},
            "fields": [{"type": "mrkdwn", "text": "*Job*\nbuild"}, {"type": "plain_text", "text": "exit 1"}],
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "Logs"},
                "url": "https://chainr.example/runs/r-42",
            },
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "triggered by push to main"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open run"},
                    "url": "https://chainr.example/runs/r-42",
                    "action_id": "open",
                    "style": "primary",
                }
            ],
        },
    ],
}


def test_slack_good_message(rx):
    status, _, text = post(rx.url("slack", "/services/T0/B0/X"), GOOD_SLACK, {"webhook-id": "slack_ok"})
    assert (status, text) == (200, "ok")
    rec = rx.record("slack", "slack_ok")
    assert rec["status"] == 200 and rec["problems"] == [] and rec["error"] is None
    assert rec["verified"] is None and rec["body"] == GOOD_SLACK


def test_slack_without_webhook_id_and_blocks(rx):
    since = rx.mark()
    status, _, text = post(rx.url("slack"), {"text": "plain fallback only"})
    assert (status, text) == (200, "ok")
    rec = rx.wait(lambda r: r["receiver"] == "slack" and r["id"] is None, since)
    assert rec["problems"] == [] and rec["body"] == {"text": "plain fallback only"}


def test_slack_bad_message(rx):
    bad = {
        "text": "",
        "blocks": [
            {"type": "header", "text": {"type": "mrkdwn", "text": "x"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}},
            {"type": "image", "image_url": "https://x/y.png", "alt_text": "y"},
            {"type": "context", "elements": []},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "z" * 76}, "style": "blue"}]},
            {"type": "divider", "block_id": "d" * 256},
        ],
    }
    status, _, text = post(rx.url("slack"), bad, {"webhook-id": "slack_bad"})
    assert (status, text) == (400, "invalid_blocks")
    problems = rx.record("slack", "slack_bad")["problems"]
    expected = [
        "text: the fallback text must be a non-empty string",
        "blocks[0].text.type: must be one of plain_text, not 'mrkdwn'",
        "blocks[1].text.text: 3001 characters, at most 3000",
        "blocks[2].type: unsupported block type 'image'",
        "blocks[3].elements: must be a list of 1 to 10 elements",
        "blocks[4].elements[0].text.text: 76 characters, at most 75",
        "blocks[4].elements[0].style: must be primary or danger, not 'blue'",
        "blocks[5].block_id: must be a string of 1 to 255 characters",
    ]
    assert problems == expected


def test_slack_too_many_blocks_and_not_json(rx):
    many = {"text": "t", "blocks": [{"type": "divider"}] * 51}
    assert post(rx.url("slack"), many, {"webhook-id": "slack_many"})[0] == 400
    assert rx.record("slack", "slack_many")["problems"] == ["blocks: 51 blocks, at most 50"]

    status, _, text = post(rx.url("slack"), b"not json", {"webhook-id": "slack_junk"})
    assert (status, text) == (400, "invalid_payload")
    rec = rx.record("slack", "slack_junk")
    assert rec["body"] is None and rec["body_text"] == "not json"


# --- flaky, ratelimit, silent -------------------------------------------------------------------


def test_flaky_fails_three_times_then_accepts(rx):
    statuses = []
    for _ in range(5):
        data, headers = signed("msg_flaky", EVENT)
        statuses.append(post(rx.url("flaky"), data, headers)[0])
    assert statuses == [500, 500, 500, 204, 204]
    recs = [rx.record("flaky", "msg_flaky", n) for n in range(1, 6)]
    assert [r["status"] for r in recs] == statuses
    assert all(r["verified"] is True for r in recs)

    # Another id starts over; a bad signature is answered 400 once the failures are over.
    for n in range(1, 5):
        data, headers = signed("msg_flaky_bad", EVENT)
        status = post(rx.url("flaky"), data + b" ", headers)[0]
        assert status == (500 if n <= 3 else 400)
        assert rx.record("flaky", "msg_flaky_bad", n)["verified"] is False


def test_ratelimit_429_then_200(rx):
    status, headers, _ = post(rx.url("ratelimit"), EVENT, {"webhook-id": "msg_rl"})
    assert status == 429 and headers["Retry-After"] == "2"
    assert post(rx.url("ratelimit"), EVENT, {"webhook-id": "msg_rl"})[0] == 200
    assert post(rx.url("ratelimit"), EVENT, {"webhook-id": "msg_rl"})[0] == 200
    first, second = rx.record("ratelimit", "msg_rl", 1), rx.record("ratelimit", "msg_rl", 2)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["at"] >= first["at"] and first["verified"] is None
    assert post(rx.url("ratelimit"), EVENT, {"webhook-id": "msg_rl_other"})[0] == 429


def test_silent_never_answers(rx):
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        post(rx.url("silent", "/quiet"), EVENT, {"webhook-id": "msg_silent"}, timeout=1)
    assert 0.9 <= time.monotonic() - started < 3
    rec = rx.record("silent", "msg_silent")
    assert rec["status"] is None and rec["body"] == EVENT and rec["path"] == "/quiet"
    assert rec["headers"]["webhook-id"] == "msg_silent"


def test_silent_keeps_the_connection_open(rx):
    sock = socket.create_connection(("127.0.0.1", rx.ready["silent"]), timeout=1)
    body = b'{"a": 1}'
    sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nwebhook-id: msg_raw\r\nContent-Length: 8\r\n\r\n" + body)
    assert rx.record("silent", "msg_raw")["body"] == {"a": 1}
    with pytest.raises(socket.timeout):
        sock.recv(1)  # neither an answer nor a close
    sock.close()


# --- smtp -------------------------------------------------------------------------------------


def tls_context(rx):
    return ssl.create_default_context(cafile=rx.ready["smtp_ca"])


def message(subject):
    msg = EmailMessage()
    msg["From"] = "chainr <chainr@localhost>"
    msg["To"] = "dev@example.com, ops@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="chainr.test")
    msg.set_content("ci #42 failed\nsee the logs\n")
    msg.add_alternative("<p><b>ci #42</b> failed</p>\n", subtype="html")
    return msg


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_smtp_starttls_auth_text_and_html(rx, host):
    msg = message(f"[chainr] ci #42 failed ✗ via {host}")
    with smtplib.SMTP(host, rx.ready["smtp"], timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=tls_context(rx))
        client.ehlo()
        client.login("chainr", PASSWORD)
        refused = client.send_message(msg, from_addr="bounce@chainr.test", to_addrs=["dev@example.com", "ops@example.com"])
        assert refused == {}
    rec = rx.record("smtp", msg["Message-ID"])
    mail = rec["mail"]
    assert rec["status"] is None and rec["verified"] is None and rec["error"] is None
    assert mail["tls"] is True and mail["auth_login"] == "chainr"
    assert mail["mail_from"] == "bounce@chainr.test"
    assert mail["rcpt_tos"] == ["dev@example.com", "ops@example.com"]
    assert mail["subject"] == f"[chainr] ci #42 failed ✗ via {host}"
    assert mail["message_id"] == msg["Message-ID"]
    assert mail["from"] == "chainr <chainr@localhost>" and mail["to"] == "dev@example.com, ops@example.com"
    assert mail["content_type"] == "multipart/alternative"
    assert mail["parts"] == ["text/plain", "text/html"]
    assert mail["text"] == "ci #42 failed\nsee the logs\n"
    assert mail["html"] == "<p><b>ci #42</b> failed</p>\n"
    assert mail["bare_lf"] is False


def test_smtp_plain_refused(rx):
    since = rx.mark()
    with smtplib.SMTP("127.0.0.1", rx.ready["smtp"], timeout=5) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@chainr.test", ["b@example.com"], message("plain").as_bytes())
        assert refused.value.smtp_code == 530
    refusal = rx.wait(lambda r: r["receiver"] == "smtp", since)
    assert refusal["id"] is None and refusal["mail"] is None and refusal["tls"] is False
    assert refusal["error"] == "530 Must issue a STARTTLS command first"


def test_smtp_auth_wrong_password_and_missing_auth_refused(rx):
    since = rx.mark()
    with smtplib.SMTP("127.0.0.1", rx.ready["smtp"], timeout=5) as client:
        client.starttls(context=tls_context(rx))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("chainr", "wrong")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@chainr.test", ["b@example.com"], message("no auth").as_bytes())
        assert refused.value.smtp_code == 530
    bad_login = rx.wait(lambda r: r["receiver"] == "smtp", since)
    assert bad_login["error"].startswith("535") and bad_login["tls"] is True
    no_auth = rx.wait(lambda r: r["receiver"] == "smtp" and (r["error"] or "").startswith("530"), since)
    assert no_auth["error"] == "530 5.7.0 Authentication required" and no_auth["mail"] is None


def test_smtp_without_password_needs_no_auth(tmp_path_factory):
    rx = start(tmp_path_factory)
    try:
        msg = message("no password configured")
        del msg["Message-ID"]
        msg.clear_content()
        msg.set_content("just text\n")
        with smtplib.SMTP("localhost", rx.ready["smtp"], timeout=5) as client:
            client.starttls(context=tls_context(rx))
            client.send_message(msg, from_addr="a@chainr.test", to_addrs=["b@example.com"])
        rec = rx.record("smtp", None)
        mail = rec["mail"]
        assert mail["tls"] is True and mail["auth_login"] is None and mail["message_id"] is None
        assert mail["content_type"] == "text/plain" and mail["parts"] == []
        assert mail["text"] == "just text\n" and mail["html"] is None
    finally:
        assert rx.stop() == 0


# --- robustness ---------------------------------------------------------------------------------


def raw_exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def test_broken_requests_are_recorded_and_the_receiver_lives_on(rx):
    since = rx.mark()
    answer = raw_exchange(rx.ready["webhook"], b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")
    rec = rx.wait(lambda r: r["receiver"] == "webhook" and r["status"] == 500, since)
    assert rec["error"].startswith("receiver failure: ValueError")

    answer = raw_exchange(rx.ready["webhook"], b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 ")
    rec = rx.wait(lambda r: r["receiver"] == "webhook" and r["status"] == 501, since)
    assert rec["error"].startswith("malformed request: 501") and rec["method"] == "BREW"

    raw_exchange(rx.ready["webhook"], b"nonsense\r\n\r\n")
    rec = rx.wait(lambda r: r["receiver"] == "webhook" and r["status"] == 400 and r["id"] is None, since)
    assert rec["error"].startswith("malformed request: 400")

    data, headers = signed("msg_after_failure", EVENT)
    assert post(rx.url("webhook"), data, headers)[0] == 204


# --- lifetime -----------------------------------------------------------------------------------


def test_exits_on_stdin_eof(tmp_path_factory):
    rx = start(tmp_path_factory)
    # An open connection to silent must not keep the script alive.
    sock = socket.create_connection(("127.0.0.1", rx.ready["silent"]))
    sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    started = time.monotonic()
    rx.proc.stdin.close()
    assert rx.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 2
    sock.close()


def test_exits_on_sigterm(tmp_path_factory):
    rx = start(tmp_path_factory)
    rx.proc.send_signal(signal.SIGTERM)
    assert rx.proc.wait(timeout=5) == 0
