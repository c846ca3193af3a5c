#!/usr/bin/env python3
"""Loopback receivers for chainr's notification tests, independent of chainr's code.

    python3 tests/notify/receivers.py --dir DIR

Environment: WEBHOOK_SECRET (a Standard Webhooks secret, `whsec_<base64>`), optionally
SMTP_PASSWORD (then the SMTP server requires AUTH as user `chainr` with that password).

Receivers, each on its own free port on 127.0.0.1:

  webhook    POST, verified with the `standardwebhooks` package: 204 if it verifies, else 400.
  slack      POST, a Slack incoming-webhook message checked against Block Kit's rules:
             200 `ok`, or 400 `invalid_blocks` (`invalid_payload` if the body isn't a JSON object).
  flaky      like webhook, but 500 to the first three requests for each `webhook-id`;
             from the fourth on 204 (400 if the signature doesn't verify).
  ratelimit  429 with `Retry-After: 2` to the first request for each `webhook-id`, then 200.
  silent     reads requests and never answers; the connection stays open until the client
             closes it.
  smtp       aiosmtpd with STARTTLS required (a self-signed certificate for localhost and
             127.0.0.1 generated into DIR/smtp-cert.pem and DIR/smtp-key.pem).

When everything listens, one line goes to stdout:

  {"ready": true, "webhook": PORT, "slack": PORT, "flaky": PORT, "ratelimit": PORT,
   "silent": PORT, "smtp": PORT, "smtp_ca": "DIR/smtp-cert.pem"}

then one JSON line per request a receiver got (written and flushed before the receiver
answers, so a client that has its answer can already read the line):

  receiver   the receiver's name
  id         the `webhook-id` header (smtp: the Message-ID), or null
  status     the HTTP status answered (null for silent and smtp)
  verified   the signature verified (webhook and flaky; null otherwise)
  error      why it was refused or failed, or null
  attempt    the n-th request with this id at this receiver, from 1
  at         arrival time, unix seconds (float)
  method, path, headers ({lower-case name: value}), body (the JSON body or null),
  body_text  (the body as text when it isn't JSON, else null)      -- HTTP receivers
  problems   the Slack message's problems (slack only, [] when valid)
  mail       smtp only: {mail_from, rcpt_tos, subject, message_id, from, to, date, tls,
             auth_login, content_type, parts, text, html, bare_lf, headers}; null on a
             refused SMTP command, which is recorded with the server's reply as `error`

The script exits with status 0 on SIGTERM, SIGINT or when its stdin reaches EOF.
"""

import argparse
import email
import email.policy
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from standardwebhooks.webhooks import Webhook

HOST = "127.0.0.1"
OPENSSL = "/usr/bin/openssl" if os.path.exists("/usr/bin/openssl") else "openssl"


# --- output -------------------------------------------------------------------------------


class Recorder:
    """Writes JSON lines to stdout, one at a time, and counts attempts per (receiver, id)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._attempts = {}

    def write(self, obj):
        line = json.dumps(obj, default=str) + "\n"
        with self._lock:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                # Nobody reads any more: the test is gone, and so are we.
                os._exit(0)

    def next_attempt(self, receiver, msg_id):
        with self._lock:
            key = (receiver, msg_id)
            self._attempts[key] = self._attempts.get(key, 0) + 1
            return self._attempts[key]

    def record(self, receiver, msg_id, at, **fields):
        rec = {
            "receiver": receiver,
            "id": msg_id,
            "status": None,
            "verified": None,
            "error": None,
            "attempt": fields.pop("attempt", None) or self.next_attempt(receiver, msg_id),
            "at": at,
        }
        rec.update(fields)
        self.write(rec)
        return rec

    def failure(self, receiver, exc, **fields):
        """A receiver's own failure: an error line, never a dead script."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        rec = {
            "receiver": receiver,
            "id": fields.pop("id", None),
            "status": fields.pop("status", None),
            "verified": None,
            "error": "receiver failure: " + text,
            "attempt": fields.pop("attempt", None),
            "at": fields.pop("at", time.time()),
        }
        rec.update(fields)
        try:
            self.write(rec)
        except Exception:
            pass


RECORDER = Recorder()


# --- Standard Webhooks ----------------------------------------------------------------------


def verify_webhook(body, headers):
    """(verified, error text): the standardwebhooks package is the oracle."""
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        return False, "WEBHOOK_SECRET is not set"
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
        return True, None
    except Exception as exc:  # WebhookVerificationError, or a malformed secret
        return False, str(exc) or type(exc).__name__


# --- Slack Block Kit ------------------------------------------------------------------------

BLOCK_KEYS = {
    "header": {"type", "text", "block_id"},
    "section": {"type", "text", "fields", "accessory", "block_id", "expand"},
    "context": {"type", "elements", "block_id"},
    "divider": {"type", "block_id"},
    "actions": {"type", "elements", "block_id"},
}
BUTTON_KEYS = {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}


def _is_str(v):
    return isinstance(v, str)


def check_text_object(obj, where, problems, max_len, types=("plain_text", "mrkdwn")):
    if not isinstance(obj, dict):
        problems.append(f"{where}: must be a text object")
        return
    kind = obj.get("type")
    if kind not in types:
        problems.append(f"{where}.type: must be one of {', '.join(types)}, not {kind!r}")
        return
    allowed = {"type", "text", "emoji"} if kind == "plain_text" else {"type", "text", "verbatim"}
    for key in sorted(set(obj) - allowed):
        problems.append(f"{where}: unknown field {key!r} for {kind}")
    text = obj.get("text")
    if not _is_str(text):
        problems.append(f"{where}.text: must be a string")
    elif not text:
        problems.append(f"{where}.text: must not be empty")
    elif len(text) > max_len:
        problems.append(f"{where}.text: {len(text)} characters, at most {max_len}")
    for flag in ("emoji", "verbatim"):
        if flag in obj and not isinstance(obj[flag], bool):
            problems.append(f"{where}.{flag}: must be a boolean")


def check_button(el, where, problems):
    if not isinstance(el, dict):
        problems.append(f"{where}: must be an object")
        return
    if el.get("type") != "button":
        problems.append(f"{where}.type: must be 'button', not {el.get('type')!r}")
        return
    for key in sorted(set(el) - BUTTON_KEYS):
        problems.append(f"{where}: unknown field {key!r} for button")
    check_text_object(el.get("text"), f"{where}.text", problems, 75, types=("plain_text",))
    if "url" in el:
        url = el["url"]
        if not _is_str(url) or not url:
            problems.append(f"{where}.url: must be a non-empty string")
        elif len(url) > 3000:
            problems.append(f"{where}.url: {len(url)} characters, at most 3000")
        elif not (url.startswith("http://") or url.startswith("https://")):
            problems.append(f"{where}.url: must be an http(s) URL")
    if "action_id" in el:
        aid = el["action_id"]
        if not _is_str(aid) or not aid or len(aid) > 255:
            problems.append(f"{where}.action_id: must be a string of 1 to 255 characters")
    if "value" in el:
        value = el["value"]
        if not _is_str(value) or len(value) > 2000:
            problems.append(f"{where}.value: must be a string of at most 2000 characters")
    if "style" in el and el["style"] not in ("primary", "danger"):
        problems.append(f"{where}.style: must be primary or danger, not {el['style']!r}")


def check_image_element(el, where, problems):
    for key in ("image_url", "alt_text"):
        if not _is_str(el.get(key)) or not el.get(key):
            problems.append(f"{where}.{key}: must be a non-empty string")
    for key in sorted(set(el) - {"type", "image_url", "alt_text", "slack_file"}):
        problems.append(f"{where}: unknown field {key!r} for image")


def check_slack_message(msg):
    """The problems Slack would reject this incoming-webhook message for ([] when valid)."""
    problems = []
    if not isinstance(msg, dict):
        return ["message: must be a JSON object"]
    text = msg.get("text")
    if not _is_str(text) or not text.strip():
        problems.append("text: the fallback text must be a non-empty string")
    if "blocks" not in msg:
        return problems
    blocks = msg["blocks"]
    if not isinstance(blocks, list):
        return problems + ["blocks: must be a list"]
    if len(blocks) > 50:
        problems.append(f"blocks: {len(blocks)} blocks, at most 50")
    seen_ids = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict):
            problems.append(f"{where}: must be an object")
            continue
        kind = block.get("type")
        if kind not in BLOCK_KEYS:
            problems.append(f"{where}.type: unsupported block type {kind!r}")
            continue
        for key in sorted(set(block) - BLOCK_KEYS[kind]):
            problems.append(f"{where}: unknown field {key!r} for {kind}")
        if "block_id" in block:
            bid = block["block_id"]
            if not _is_str(bid) or not bid or len(bid) > 255:
                problems.append(f"{where}.block_id: must be a string of 1 to 255 characters")
            elif bid in seen_ids:
                problems.append(f"{where}.block_id: {bid!r} is not unique")
            else:
                seen_ids.add(bid)
        if kind == "header":
            check_text_object(block.get("text"), f"{where}.text", problems, 150, types=("plain_text",))
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                check_text_object(block["text"], f"{where}.text", problems, 3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not fields:
                    problems.append(f"{where}.fields: must be a non-empty list")
                else:
                    if len(fields) > 10:
                        problems.append(f"{where}.fields: {len(fields)} fields, at most 10")
                    for j, field in enumerate(fields):
                        check_text_object(field, f"{where}.fields[{j}]", problems, 2000)
            if "accessory" in block:
                acc = block["accessory"]
                if not isinstance(acc, dict) or not _is_str(acc.get("type")):
                    problems.append(f"{where}.accessory: must be an element object with a type")
                elif acc["type"] == "button":
                    check_button(acc, f"{where}.accessory", problems)
                elif acc["type"] == "image":
                    check_image_element(acc, f"{where}.accessory", problems)
            if "expand" in block and not isinstance(block["expand"], bool):
                problems.append(f"{where}.expand: must be a boolean")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: must be a list of 1 to 10 elements")
            else:
                for j, el in enumerate(elements):
                    ew = f"{where}.elements[{j}]"
                    if isinstance(el, dict) and el.get("type") == "image":
                        check_image_element(el, ew, problems)
                    else:
                        check_text_object(el, ew, problems, 3000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"{where}.elements: must be a list of 1 to 25 elements")
            else:
                for j, el in enumerate(elements):
                    check_button(el, f"{where}.elements[{j}]", problems)
    return problems


# --- HTTP receivers -------------------------------------------------------------------------


def parse_body(raw):
    """(parsed JSON or None, the body as text when it isn't JSON, else None)."""
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except ValueError:
        return None, raw.decode("utf-8", errors="replace")


def header_dict(pairs):
    out = {}
    for name, value in pairs:
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class Receiver(BaseHTTPRequestHandler):
    """One HTTP request: read it, decide the answer, write the record line, then answer."""

    protocol_version = "HTTP/1.1"
    name = "?"

    def version_string(self):
        return "chainr-test-receiver"

    def log_message(self, format, *args):  # quiet: stdout is for records only
        pass

    def send_error(self, code, message=None, explain=None):
        """http.server's answer to a request it can't parse: recorded too."""
        try:
            RECORDER.record(
                self.name,
                None,
                time.time(),
                status=code,
                error=f"malformed request: {code} {message or ''}".strip(),
                method=getattr(self, "command", None),
                path=getattr(self, "path", None),
            )
        except Exception:
            pass
        super().send_error(code, message, explain)

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304):
            self.wfile.write(body)

    def _serve(self):
        at = time.time()
        msg_id = None
        attempt = None
        try:
            raw = self.read_body()
            headers = header_dict(self.headers.items())
            msg_id = headers.get("webhook-id")
            attempt = RECORDER.next_attempt(self.name, msg_id)
            body, body_text = parse_body(raw)
            fields = dict(method=self.command, path=self.path, headers=headers, body=body, body_text=body_text)
            if self.command != "POST":
                status, reply, extra = 405, b"method not allowed", [("Allow", "POST")]
                fields["error"] = f"method {self.command} not allowed"
            else:
                status, reply, extra = self.decide(raw, headers, body, attempt, fields)
            RECORDER.record(self.name, msg_id, at, attempt=attempt, status=status, **fields)
        except Exception as exc:
            RECORDER.failure(self.name, exc, id=msg_id, attempt=attempt, at=at, status=500)
            status, reply, extra = 500, b"receiver failure", []
            self.close_connection = True
        self.answer(status, reply, extra)

    def decide(self, raw, headers, body, attempt, fields):
        raise NotImplementedError

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    def do_HEAD(self):
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()


class WebhookReceiver(Receiver):
    name = "webhook"

    def decide(self, raw, headers, body, attempt, fields):
        ok, error = verify_webhook(raw, headers)
        fields.update(verified=ok, error=error)
        if ok:
            return 204, b"", []
        return 400, error.encode(), []


class SlackReceiver(Receiver):
    name = "slack"

    def decide(self, raw, headers, body, attempt, fields):
        if not isinstance(body, dict):
            problems = ["body: must be a JSON object"]
            fields.update(problems=problems, error="; ".join(problems))
            return 400, b"invalid_payload", []
        problems = check_slack_message(body)
        fields.update(problems=problems, error="; ".join(problems) or None)
        if problems:
            return 400, b"invalid_blocks", []
        return 200, b"ok", []


class FlakyReceiver(Receiver):
    name = "flaky"
    failures = 3

    def decide(self, raw, headers, body, attempt, fields):
        ok, error = verify_webhook(raw, headers)
        fields.update(verified=ok, error=error)
        if attempt <= self.failures:
            return 500, f"flaky: attempt {attempt} fails".encode(), []
        if ok:
            return 204, b"", []
        return 400, error.encode(), []


class RateLimitReceiver(Receiver):
    name = "ratelimit"

    def decide(self, raw, headers, body, attempt, fields):
        if attempt == 1:
            return 429, b"rate limited", [("Retry-After", "2")]
        return 200, b"ok", []


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError)):
            RECORDER.failure(self.RequestHandlerClass.name, exc)


# --- silent ---------------------------------------------------------------------------------


class SilentHandler(socketserver.BaseRequestHandler):
    """Reads requests and never answers; returns when the client closes the connection."""

    def handle(self):
        sock = self.request
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            try:
                buf = self.consume(buf)
            except Exception as exc:
                RECORDER.failure("silent", exc)
                buf = b""

    def consume(self, buf):
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head = buf[:end].decode("latin-1").split("\r\n")
            request_line, lines = head[0], head[1:]
            pairs = []
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    pairs.append((name.strip(), value.strip()))
            headers = header_dict(pairs)
            length = int(headers.get("content-length") or 0)
            if len(buf) < end + 4 + length:
                return buf
            raw = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            parts = request_line.split(" ")
            body, body_text = parse_body(raw)
            RECORDER.record(
                "silent",
                headers.get("webhook-id"),
                time.time(),
                method=parts[0] if parts else None,
                path=parts[1] if len(parts) > 1 else None,
                headers=headers,
                body=body,
                body_text=body_text,
            )


class SilentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if exc is not None:
            RECORDER.failure("silent", exc)


# --- SMTP -----------------------------------------------------------------------------------


def make_certificate(directory):
    cert = os.path.join(directory, "smtp-cert.pem")
    key = os.path.join(directory, "smtp-key.pem")
    subprocess.run(
        [
            OPENSSL, "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", key, "-out", cert,
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            # A leaf, not a CA: rustls/webpki refuses a CA certificate as a server's own.
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return cert, key


def mail_record(envelope, session):
    raw = envelope.original_content or envelope.content or b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    def header(name):
        value = msg.get(name)
        return None if value is None else str(value)

    def content(kind):
        part = msg.get_body(preferencelist=(kind,))
        if part is None or part.get_content_type() != f"text/{kind}":
            return None
        return part.get_content().replace("\r\n", "\n")

    # The authenticator's result (a LoginPassword), not the deprecated `login_data`.
    auth = getattr(session, "auth_data", None)
    login = getattr(auth, "login", None)
    if isinstance(login, bytes):
        login = login.decode("utf-8", errors="replace")
    return {
        "mail_from": envelope.mail_from,
        "rcpt_tos": list(envelope.rcpt_tos),
        "subject": header("Subject"),
        "message_id": header("Message-ID"),
        "from": header("From"),
        "to": header("To"),
        "date": header("Date"),
        "tls": session.ssl is not None,
        "auth_login": login,
        "content_type": msg.get_content_type(),
        "parts": [part.get_content_type() for part in msg.walk()][1:],
        "text": content("plain"),
        "html": content("html"),
        # SMTP wants CRLF line ends; a bare LF in the data is a client bug.
        "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
        "headers": header_dict((k, str(v)) for k, v in msg.items()),
    }


class MailHandler:
    async def handle_DATA(self, server, session, envelope):
        at = time.time()
        try:
            mail = mail_record(envelope, session)
            RECORDER.record("smtp", mail["message_id"], at, mail=mail)
        except Exception as exc:
            RECORDER.failure("smtp", exc, at=at, mail=None)
        return "250 OK"

    async def handle_exception(self, error):
        RECORDER.failure("smtp", error, mail=None)
        return "451 4.3.0 receiver failure"


class RecordingSMTP(SMTP):
    """Records the commands the server refuses (no STARTTLS, no or bad AUTH)."""

    REFUSALS = ("530", "535", "538", "554")

    async def push(self, status):
        if status[:3] in self.REFUSALS:
            try:
                tls = self.session is not None and self.session.ssl is not None
                RECORDER.record("smtp", None, time.time(), error=status, mail=None, tls=tls)
            except Exception as exc:
                RECORDER.failure("smtp", exc, mail=None)
        return await super().push(status)


class LoopbackController(Controller):
    """aiosmtpd's Controller on a port the system picks (port 0)."""

    def _create_server(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.hostname, 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)

    def factory(self):
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


def smtp_authenticator(password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"chainr"
            and auth_data.password == password.encode()
        ):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    return authenticate


def start_smtp(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    options = dict(
        hostname=HOST,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
    )
    password = os.environ.get("SMTP_PASSWORD")
    if password:
        options.update(authenticator=smtp_authenticator(password), auth_required=True)
    controller = LoopbackController(MailHandler(), **options)
    controller.start()
    return controller


# --- main -----------------------------------------------------------------------------------


def serve(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return server.server_address[1]


def watch_stdin(stop):
    try:
        while True:
            if not os.read(sys.stdin.fileno(), 4096):
                break
    except OSError:
        pass
    stop.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="directory for the SMTP certificate files")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=watch_stdin, args=(stop,), daemon=True).start()

    try:
        directory = os.path.abspath(args.dir)
        ports = {}
        for name, handler in (
            ("webhook", WebhookReceiver),
            ("slack", SlackReceiver),
            ("flaky", FlakyReceiver),
            ("ratelimit", RateLimitReceiver),
        ):
            ports[name] = serve(HTTPServer((HOST, 0), handler))
        ports["silent"] = serve(SilentServer((HOST, 0), SilentHandler))
        cert, key = make_certificate(directory)
        controller = start_smtp(cert, key)
        ports["smtp"] = controller.port
    except Exception as exc:
        detail = getattr(exc, "stderr", None)
        message = f"{type(exc).__name__}: {exc}"
        if detail:
            message += ": " + detail.decode(errors="replace").strip()
        RECORDER.write({"ready": False, "error": message})
        print(message, file=sys.stderr)
        os._exit(1)

    RECORDER.write({"ready": True, **ports, "smtp_ca": cert})

    while not stop.wait(0.5):
        pass
    try:
        sys.stdout.flush()
    except Exception:
        pass
    # Daemon threads hold open connections (silent's never end on their own): leave at once.
    os._exit(0)


if __name__ == "__main__":
    main()
