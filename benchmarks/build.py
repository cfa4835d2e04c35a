"""Build and serialise messages: smtpkit against the stdlib and Django, in one run.

Each message: text + HTML rendered from Jinja2 templates, one 20 KB attachment, a fresh
recipient. Every contender renders the same templates per message (rendering is included);
smtpkit's figure also includes address and header validation. Then the peak memory of building
and serialising a message with a 25 MB attachment (tracemalloc).

    /work/venv/bin/python benchmarks/build.py                # 10,000 messages each
    /work/venv/bin/python benchmarks/build.py --count 2000   # quicker

Needs Django for the comparison (``pip install django``); without it that row is skipped.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import email_validator  # noqa: E402

from smtpkit._message import Attachment, Message  # noqa: E402

SUBJECT = "Your receipt for order {{ order }}"
TEXT = """Hello {{ name }},

Thank you for your order {{ order }} placed on {{ date }}.
{% for item in items %}
  - {{ item.title }} x{{ item.qty }}: {{ item.price }} EUR
{%- endfor %}

Total: {{ total }} EUR

Your receipt is attached. If you have any question, reply to this message.

-- The Example Shop team
"""
HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Receipt {{ order }}</title></head>
<body style="font-family: sans-serif">
<h1>Hello {{ name }},</h1>
<p>Thank you for your order <strong>{{ order }}</strong> placed on {{ date }}.</p>
<table>
{% for item in items %}<tr><td>{{ item.title }}</td><td>x{{ item.qty }}</td>
<td>{{ item.price }} EUR</td></tr>
{% endfor %}</table>
<p>Total: <strong>{{ total }} EUR</strong></p>
<p>Your receipt is attached. If you have any question, reply to this message.</p>
<p>&mdash; The Example Shop team</p>
</body></html>
"""
ITEMS = [
    {"title": "Blue T-shirt <M>", "qty": 2, "price": "19.90"},
    {"title": "Café mug", "qty": 1, "price": "9.50"},
    {"title": "Sticker pack & co", "qty": 3, "price": "2.00"},
]
ATTACHMENT = os.urandom(20 * 1024)
SENDER = "Example Shop <shop@example.com>"


def make_renderer() -> tuple[str, Callable[[dict[str, Any]], tuple[str, str, str]]]:
    """smtpkit's Templates when present, else plain Jinja2 with the same settings."""
    import tempfile

    try:
        from smtpkit._templates import Templates
    except ImportError:
        pass
    else:
        directory = Path(tempfile.mkdtemp(prefix="smtpkit-bench-"))
        (directory / "receipt.subject.txt").write_text(SUBJECT, encoding="utf-8")
        (directory / "receipt.txt").write_text(TEXT, encoding="utf-8")
        (directory / "receipt.html").write_text(HTML, encoding="utf-8")
        templates = Templates(directory)

        def render_t(ctx: dict[str, Any]) -> tuple[str, str, str]:
            r = templates.render("receipt", ctx)
            return r.subject, r.text or "", r.html or ""

        return "smtpkit.Templates", render_t

    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    text_env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
    html_env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
    subject_t = text_env.from_string(SUBJECT)
    text_t = text_env.from_string(TEXT)
    html_t = html_env.from_string(HTML)

    def render_j(ctx: dict[str, Any]) -> tuple[str, str, str]:
        return subject_t.render(ctx), text_t.render(ctx), html_t.render(ctx)

    return "jinja2 (SandboxedEnvironment)", render_j


def context(i: int) -> dict[str, Any]:
    return {
        "name": f"Ann Lee {i}",
        "order": f"A-{100000 + i}",
        "date": "2026-11-27",
        "items": ITEMS,
        "total": "55.30",
    }


def bench_smtpkit(count: int, render: Callable[[dict[str, Any]], tuple[str, str, str]]) -> float:
    start = time.perf_counter()
    for i in range(count):
        subject, text, html = render(context(i))
        msg = Message(
            sender=SENDER,
            to=[f"Ann Lee <ann.lee+{i}@example.com>"],
            subject=subject,
            text=text,
            html=html,
            attachments=[Attachment("receipt.pdf", ATTACHMENT)],
        )
        msg.to_bytes()
    return time.perf_counter() - start


def bench_stdlib(count: int, render: Callable[[dict[str, Any]], tuple[str, str, str]]) -> float:
    start = time.perf_counter()
    for i in range(count):
        subject, text, html = render(context(i))
        msg = EmailMessage(policy=SMTP)
        msg["From"] = SENDER
        msg["To"] = f"Ann Lee <ann.lee+{i}@example.com>"
        msg["Subject"] = subject
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        msg.add_attachment(ATTACHMENT, "application", "pdf", filename="receipt.pdf")
        msg.as_bytes()
    return time.perf_counter() - start


def setup_django() -> bool:
    try:
        import django  # type: ignore[import-untyped,unused-ignore]
        from django.conf import settings  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return False
    if not settings.configured:
        settings.configure(
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            DEFAULT_CHARSET="utf-8",
            USE_TZ=True,
        )
        django.setup()
    return True


def bench_django(count: int, render: Callable[[dict[str, Any]], tuple[str, str, str]]) -> float:
    from django.core.mail import (  # type: ignore[import-untyped,unused-ignore]
        EmailMultiAlternatives,
    )

    start = time.perf_counter()
    for i in range(count):
        subject, text, html = render(context(i))
        msg = EmailMultiAlternatives(subject, text, SENDER, [f"Ann Lee <ann.lee+{i}@example.com>"])
        msg.attach_alternative(html, "text/html")
        msg.attach("receipt.pdf", ATTACHMENT, "application/pdf")
        msg.message().as_bytes()
    return time.perf_counter() - start


def peak_memory(size: int) -> tuple[int, int]:
    """Peak traced memory building one message with a *size*-octet attachment.

    Returns (peak excluding the caller's attachment bytes, size of the result).
    """
    data = os.urandom(size)
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    msg = Message(
        sender=SENDER,
        to=["ann@example.com"],
        subject="Big file",
        text="See the attachment.",
        attachments=[Attachment("big.bin", data)],
    )
    out = msg.to_bytes()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages per contender")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--skip-stdlib", action="store_true")
    parser.add_argument("--skip-django", action="store_true")
    parser.add_argument("--memory-mb", type=int, default=25, help="attachment size for the peak")
    args = parser.parse_args()

    # example.com is always allowed; the switch only matters if the addresses are edited.
    email_validator.TEST_ENVIRONMENT = False
    renderer_name, render = make_renderer()
    print(f"python {sys.version.split()[0]}, templates: {renderer_name}, {args.count} messages")
    print("message: text + HTML (rendered), one 20 KB attachment, validation included\n")

    runs: list[tuple[str, Callable[[int, Any], float]]] = [("smtpkit", bench_smtpkit)]
    if not args.skip_stdlib:
        runs.append(("stdlib EmailMessage (policy SMTP)", bench_stdlib))
    if not args.skip_django:
        if setup_django():
            runs.append(("Django EmailMultiAlternatives", bench_django))
        else:
            print("(Django not installed: pip install django)")
    for _, fn in runs:
        fn(min(200, args.count), render)  # warm-up: imports, caches, mimetypes database
    # Interleaved rounds, so that a change in machine load affects every contender alike.
    elapsed = dict.fromkeys([name for name, _ in runs], 0.0)
    rounds = max(1, min(args.rounds, args.count))
    for r in range(rounds):
        share = args.count // rounds + (1 if r < args.count % rounds else 0)
        for name, fn in runs:
            gc.collect()
            elapsed[name] += fn(share, render)
    results: dict[str, float] = {}
    for name, _ in runs:
        results[name] = args.count / elapsed[name]
        per = elapsed[name] / args.count * 1e3
        print(f"{name:36} {results[name]:9.0f} msgs/s  {per:7.3f} ms/msg")

    django_rate = results.get("Django EmailMultiAlternatives")
    if django_rate:
        print(f"\nsmtpkit / Django: {results['smtpkit'] / django_rate:.2f}x (goal >= 2x)")
    stdlib_rate = results.get("stdlib EmailMessage (policy SMTP)")
    if stdlib_rate:
        print(f"smtpkit / stdlib: {results['smtpkit'] / stdlib_rate:.2f}x")

    size = args.memory_mb * 2**20
    peak, out = peak_memory(size)
    print(
        f"\npeak memory, {args.memory_mb} MB attachment: {peak / 2**20:.1f} MB traced"
        f" = {peak / size:.2f}x the attachment (its own bytes excluded; output"
        f" {out / 2**20:.1f} MB; goal < 4x)"
    )


if __name__ == "__main__":
    main()
