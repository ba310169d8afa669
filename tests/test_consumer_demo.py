"""`make run` (python -m consumer.demo) end to end: broker, service, stream, progress, Ctrl+C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from consumer.demo import MALFORMED

pytestmark = pytest.mark.integration


def test_demo_labels_every_post_counts_dead_letters_and_ctrl_c_stops_it_cleanly(model_name):
    n = 300
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    env["SENTIMENT_MODEL"] = model_name
    demo = subprocess.Popen(
        [sys.executable, "-m", "consumer.demo", "--posts", str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    assert demo.stdout is not None
    lines = []
    try:
        for line in demo.stdout:  # the demo's own output is the condition we wait on
            lines.append(line)
            if "Ctrl+C to stop" in line:
                break
        else:
            pytest.fail("the demo ended before labelling everything:\n" + "".join(lines))
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    out = "".join(lines) + rest
    assert demo.returncode == 0, out
    assert re.search(r"Metrics: http://127\.0\.0\.1:\d+/metrics", out)
    final = [line for line in lines if f"{n}/{n} labelled" in line]
    assert final, out
    assert "posts/s" in final[-1]
    # Social posts stream among the reviews, each kind scored against its own gold labels.
    assert re.search(r"agrees with gold: reviews \d+\.\d%, socials \d+\.\d%", final[-1]), final
    dead = re.search(r"dead letters: (.*)$", final[-1])
    assert dead is not None
    assert sum(int(x) for x in re.findall(r"\b(\d+)\b", dead.group(1))) == len(MALFORMED)
    assert "service exited with 0" in rest
