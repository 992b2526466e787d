"""Run by tests/test_reliability.py in a subprocess: a tiny DPO run that SIGKILLs itself while writing a checkpoint.

    python checkpoint_kill_script.py OUTPUT_DIR POINT STEP

POINT says where the checkpoint of optimizer step STEP is cut: "weights" (the policy's safetensors half written),
"optimizer" (trainer_state.safetensors half written), "between" (policy written, trainer state not begun) or "rank"
(everything written but not yet renamed into place). The run itself is the one `tiny_run` builds in the test.
"""
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_reliability import tiny_trainer  # noqa: E402

import cotlab.training.checkpointing as trainer_module  # noqa: E402
from cotlab.policy import JanusPolicy  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def cut(path: Path) -> None:
    """Truncate a file to half its size, as a kill in the middle of its write leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def main(out: str, point: str, step: int) -> None:
    torch.set_num_threads(1)
    target = f"checkpoint-{step:06d}"
    save_pretrained, save_state, publish = JanusPolicy.save_pretrained, trainer_module.save_state, \
        trainer_module.publish_directory

    def weights(self, path):
        save_pretrained(self, path)
        if target in str(path):
            cut(max(Path(path).glob("*.safetensors"), key=lambda p: p.stat().st_size))
            die()

    def state(directory, name, value):
        if target in str(directory) and name == "trainer_state" and point == "between":
            die()
        paths = save_state(directory, name, value)
        if target in str(directory) and name == "trainer_state" and point == "optimizer":
            cut(paths[0])
            die()
        return paths

    def publish_then(partial, final):
        if target in str(final) and point == "rank":
            die()
        return publish(partial, final)

    if point == "weights":
        JanusPolicy.save_pretrained = weights
    trainer_module.save_state = state
    trainer_module.publish_directory = publish_then
    tiny_trainer(out).train()
    raise SystemExit(f"the run finished: the kill point {point!r} at step {step} was never reached")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
