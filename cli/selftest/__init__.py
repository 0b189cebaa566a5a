"""Prove a deployment end to end: ``python -m cli selftest ...`` (or ``--local .state`` against ``make run``).

Steps, each printed on one line with its time; the first failure says what to check, the rest are skipped:

1. connect to AWS IoT Core over WSS with the caller's credentials (SigV4) and subscribe to the test device's
   uplink topic and downlink feedback topics;
2. post a signed synthetic uplink (ThingPark Token with the AS key, or the ChirpStack/TTS ingress token) to the
   ingress;
3. see it arrive on the uplink topic;
4. see its thing registered (``DescribeThing``);
5. publish a test downlink and see its feedback;
6. subscribe a queue of its own to the status topic (``enebular_status_push_sns``), report the test thing connected
   in its shadow (``enebular/things/<thing>/shadow/update``, the agents' topic) and see the status change arrive
   (with ``--dev-eui`` of an existing thing, a synthetic thing of its own instead: a real device's shadow is left
   alone);
7. clean up what it made: the queue and its subscription, the shadow, and the things it made (a thing that existed
   before the run stays).

Secrets (the AS key, the ingress token) come from the environment variable ``BRIDGE_SELFTEST_SECRET`` or, with
``--local``, from ``make run``'s state directory; they are never printed. Exit status: 0 when every step passed, 1
when one failed, 2 for bad usage.
"""

from cli.selftest.clients import Listener
from cli.selftest.command import main
from cli.selftest.steps import downlink_feedback, run_selftest
from cli.selftest.target import SECRET_ENV, Lns, SelfTestError, Target
from cli.selftest.uplink import uplink_request

__all__ = [
    "SECRET_ENV",
    "Listener",
    "Lns",
    "SelfTestError",
    "Target",
    "downlink_feedback",
    "main",
    "run_selftest",
    "uplink_request",
]
