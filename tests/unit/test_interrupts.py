"""SIGTERM ends a run through its finally blocks as Ctrl-C does, and a shielded teardown is
never cut short by either: the signal is held and raised when the teardown is done."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mailring.interrupts import sigint_default

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from mailring import interrupts
    assert interrupts.install()
    steps = []
    try:
        try:
            with interrupts.shielded():
                os.kill(os.getpid(), signal.{sig})
                time.sleep(0.2)  # the handler has run by now; the block must go on
                steps.append("teardown finished")
            steps.append("after the shield")  # never: the held signal is raised at its end
        finally:
            steps.append("finally ran")
    except KeyboardInterrupt as exc:
        steps.append(f"{{type(exc).__name__}} {{interrupts.exit_status(exc)}}")
    print("; ".join(steps))
""")


@pytest.mark.parametrize("sig,name,status", [("SIGTERM", "Terminated", 143),
                                             ("SIGINT", "KeyboardInterrupt", 130)])
def test_a_signal_in_a_shielded_block_is_raised_when_the_block_ends(sig, name, status):
    res = subprocess.run([sys.executable, "-c", SCRIPT.format(sig=sig)], capture_output=True,
                         text=True, timeout=30, preexec_fn=sigint_default)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"teardown finished; finally ran; {name} {status}"


def test_the_cli_turns_sigterm_into_an_interrupt_with_status_143(tmp_path):
    # the CLI's own main with a verb that gets SIGTERM while it works
    code = textwrap.dedent("""
        import os, signal, sys, time
        from mailring.cli import main as cli
        def verb(args):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)
            finally:
                print("finally ran", flush=True)
        real = cli.parser
        def parser():
            p = real()
            p._subparsers._group_actions[0].choices["validate"].set_defaults(func=verb)
            return p
        cli.parser = parser
        sys.exit(cli.main(["validate"]))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path)
    assert res.returncode == 143, res.stderr
    assert res.stdout == "finally ran\n"
    assert res.stderr == "mailring: interrupted (SIGTERM)\n"


def test_an_xdist_controller_passes_sigterm_not_sigint_on_to_its_children():
    """A worker (here: a child that exits 7 on SIGTERM) hears the controller's SIGTERM at once."""
    import signal

    from mailring.pytest_plugin import pass_sigterm_to_workers

    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
        print("ready", flush=True)
        time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        pass_sigterm_to_workers(signal.SIGINT)  # Ctrl-C reaches the workers by itself
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)
        pass_sigterm_to_workers(signal.SIGTERM)
        assert child.wait(timeout=10) == 7
    finally:
        child.kill()
        child.wait()
