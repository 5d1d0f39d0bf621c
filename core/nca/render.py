"""Rendering a μNCA: still images, animated loops and state tiles, with the numpy or torch runtime."""

import numpy as np

from ..errors import AtelierError
from ..validate import memory_budget
from .rule import seed_state
from .runtime import Runtime, to_rgb


STEP_ARRAYS = 10  # state-sized float32 arrays a numpy step holds at once (s, y = [s, p, |s|, |p|], padding, terms)


def run_states(model, size, steps, quantized=False, seed=0, frames=0, frame_steps=2, progress=None,
               runtime="numpy"):
    """Grow a ``size``x``size`` texture for ``steps`` steps from the uniform-noise seed ``seed``.

    Returns the list of states: the one after ``steps`` steps, then ``frames`` more, each
    ``frame_steps`` steps apart (for animation).  ``runtime`` "torch" runs the same rule in torch.
    """
    need = 4 * model.channels * size * size * (STEP_ARRAYS + frames)  # float32 bytes
    if need > memory_budget():
        raise AtelierError(f"a {size}x{size} μNCA texture of {model.channels} channels"
                           f"{f' with {frames} states for the animation' if frames else ''} needs about "
                           f"{need / 2 ** 30:.1f} GiB, more than the {memory_budget() / 2 ** 30:.1f} GiB this process "
                           f"may use; choose a smaller size{' or fewer frames' if frames else ''}")
    w, b = model.weights(quantized)
    state = seed_state(np.random.default_rng(seed), 1, model.channels, size, size)[0]
    advance = _torch_advance(w, b) if runtime == "torch" else Runtime(w, b).run
    total = steps + frames * frame_steps
    if progress:
        progress.stage("growing the texture", total=total)
    done, states = 0, []
    for target in [steps] + [steps + (i + 1) * frame_steps for i in range(frames)]:
        while done < target:
            chunk = min(16, target - done)
            state = advance(state, chunk)
            done += chunk
            if progress:
                progress.update(done)
        states.append(state)
    return states


def _torch_advance(w, b):
    import torch
    from .model import step
    from .rule import perception_kernels
    w, b = torch.from_numpy(w), torch.from_numpy(b)
    kernels = torch.from_numpy(perception_kernels(w.shape[0]))

    def advance(state, steps):
        with torch.no_grad():
            s = torch.from_numpy(state)[None, None]
            for _ in range(steps):
                s = step(s, kernels, w[None], b[None])
            return s[0, 0].numpy()
    return advance


def loop_frames(states):
    """A seamless animated loop from 2F consecutive states: frame i = (1 - i/F)·s[F+i] + (i/F)·s[i].

    Frame F-1 is almost s[F-1] and the loop restarts at s[F], its successor, so the cut
    cannot be seen; in between, two moments of the texture cross-fade."""
    count = len(states) // 2
    return [to_rgb((1 - i / count) * states[count + i] + (i / count) * states[i]) for i in range(count)]


def state_tile(state, texels=4):
    """Pack a (C, H, W) state as the GLSL runtimes keep it: an image of W·T texels a row (T = ceil(C/texels)): texel
    (x·T + t, y) holds channels texels·t ... texels·t + texels-1 (zeros past C)."""
    channels, height, width = state.shape
    per = -(-channels // texels)
    padded = np.zeros((per * texels, height, width), np.float32)
    padded[:channels] = state
    return np.ascontiguousarray(padded.reshape(per, texels, height, width).transpose(2, 3, 0, 1)
                                .reshape(height, width * per, texels))
