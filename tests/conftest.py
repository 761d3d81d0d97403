"""Shared test set-up."""
import signal
import threading

import pytest


@pytest.fixture(autouse=True)
def _sigint_as_in_a_terminal():
    """Run every test with Ctrl-C delivered as in a terminal. A job started in the background of a shell without job
    control (`cmd &`, nohup) inherits SIGINT ignored, and `DeferInterrupt` rightly leaves an ignored signal alone;
    the Ctrl-C tests need the usual handler whatever the shell that started pytest did."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
