"""``rigstyle rig prefer``: the "A or B?" search of ``rigs.preference`` at a terminal, for DCCs without the
add-on. Each pair of candidates is rendered with pyrender (offscreen, EGL) into one PNG, A left, B right."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import click
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import rigs
from rigs.preference import PreferenceSession

from ..images.color import srgb_from_linear
from ..refine.param_render import front_camera, render_passes
from .options import UserError

SIZE = 256  # pixels per face
PROMPT = "A or B? [a/b/n=can't tell/q=finish]: "
ACCEPTED = "answer a or b (the one nearer what you want), n or - (can't tell) or q (finish)"
ANSWER_CODES = {"a": "a", "b": "b", "n": "n", "-": "n", "q": "q"}  # what the user types -> a, b, n or q


def parse_answers(text: str) -> list[str]:
    """``--answers`` ("abn-b", "a,b,n") as a list of "a", "b", "n" (can't tell) and "q" (finish)."""
    answers = []
    for char in text.lower():
        if char == "," or char.isspace():
            continue
        if char not in ANSWER_CODES:
            raise UserError(f"--answers: {char!r} is not an answer; {ACCEPTED}")
        answers.append(ANSWER_CODES[char])
    return answers


def run_preference(
    model: str,
    controls: Sequence[str],
    seed: int,
    noise: float,
    queries: int,
    answers: str | None,
    out: Path,
    stdin: TextIO,
) -> None:
    """Ask up to ``queries`` pairs (answers from ``answers`` or, without it, lines of ``stdin``), then write
    the estimate to ``out``: estimate.json, estimate.png and expression.npz (see ``rigstyle rig prefer``)."""
    script = parse_answers(answers) if answers is not None else None
    try:
        session = PreferenceSession(controls, seed=seed, noise=noise)
        rig = rigs.demo_head() if model == "demo" else rigs.load(model)
        session.offset(rig, np.full(session.dimensions, 0.5))  # a rig without an expression space fails here
    except rigs.RigError as error:
        raise UserError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    camera = front_camera(rig, SIZE)
    for number in range(1, queries + 1):
        if script is not None and (not script or script[0] == "q"):
            break
        a, b = session.next_query()
        path = out / f"query_{number:02d}.png"
        faces = [
            _render(rig, session, values, camera, 2 * number + side) for side, values in enumerate((a, b))
        ]
        _side_by_side(faces, ["A", "B"]).save(path)
        click.echo(f"query {number}: {path}  A={_vector(a)} B={_vector(b)}")
        choice = _scripted(script) if script is not None else _ask(stdin)
        if choice is None or choice == "q":
            break
        session.answer(None if choice == "n" else choice)
    _write_estimate(session, rig, camera, out)


def _scripted(script: list[str]) -> str:
    choice = script.pop(0)
    click.echo(PROMPT + choice)
    return choice


def _ask(stdin: TextIO) -> str | None:
    """The user's answer from ``stdin`` ("a", "b", "n" or "q"), asking again until it is one; None at EOF."""
    while True:
        click.echo(PROMPT, nl=False)
        line = stdin.readline()
        if not line:
            click.echo()
            return None
        if not stdin.isatty():  # show piped answers, so that the log reads like a session at a terminal
            click.echo(line.strip())
        choice = ANSWER_CODES.get(line.strip().lower())
        if choice is not None:
            return choice
        click.echo(f"  {line.strip()!r} is not an answer; {ACCEPTED}" if line.strip() else f"  {ACCEPTED}")


def _write_estimate(
    session: PreferenceSession, rig: rigs.Rig, camera: tuple[np.ndarray, np.ndarray], out: Path
) -> None:
    mean, covariance = session.estimate()
    sd = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    for name, value, spread in zip(session.controls, mean, sd, strict=True):
        click.echo(f"{name} {value:.2f} ± {spread:.2f}")
    answers = [answer or "n" for answer in session.answers]
    summary = {
        "controls": list(session.controls),
        "mean": mean.tolist(),
        "sd": sd.tolist(),
        "covariance": covariance.tolist(),
        "answers": answers,
        "queries": [
            {"a": a.tolist(), "b": b.tolist(), "answer": answer}
            for (a, b), answer in zip(session.queries, answers, strict=True)
        ],
        "asked": len(session.queries),
        "seed": session.seed,
        "noise": session.noise,
    }
    (out / "estimate.json").write_text(json.dumps(summary, indent=2) + "\n")
    _side_by_side([_render(rig, session, mean, camera, 0)], ["estimate"]).save(out / "estimate.png")
    offset = session.offset(rig, mean)
    np.savez(
        out / "expression.npz",
        expression=offset.expression,
        jaw=offset.jaw,
        jaw_joint=np.int64(-1 if offset.jaw_joint is None else offset.jaw_joint),
        expression_names=np.array(rig.expression_names, dtype=str),
        controls=np.array(session.controls, dtype=str),
        values=mean,
    )
    click.echo(f"wrote {out / 'estimate.json'}, {out / 'estimate.png'} and {out / 'expression.npz'}")


def _render(
    rig: rigs.Rig,
    session: PreferenceSession,
    values: np.ndarray,
    camera: tuple[np.ndarray, np.ndarray],
    frame: int,
) -> Image.Image:
    """The rig at rest with the controls at ``values``, from the front camera."""
    rest = {"expression": np.zeros(rig.num_expressions), "pose": np.zeros((rig.num_joints, 3))}
    params = session.offset(rig, values).apply(rest)
    passes = render_passes(rig, params, *camera, (SIZE, SIZE), "prefer", frame)
    rgb = np.clip(srgb_from_linear(passes.beauty), 0.0, 1.0)
    return Image.fromarray(np.rint(rgb * 255).astype(np.uint8))


def _side_by_side(faces: Sequence[Image.Image], labels: Sequence[str]) -> Image.Image:
    """The faces in a row, each labelled in its top-left corner, a thin grey line between them."""
    sheet = Image.new("RGB", (SIZE * len(faces), SIZE))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=28)
    for index, (face, label) in enumerate(zip(faces, labels, strict=True)):
        sheet.paste(face, (index * SIZE, 0))
        draw.text((index * SIZE + 10, 6), label, fill="white", font=font)
        if index:
            draw.line([(index * SIZE, 0), (index * SIZE, SIZE)], fill=(128, 128, 128), width=2)
    return sheet


def _vector(values: np.ndarray) -> str:
    return "[" + " ".join(f"{value:.2f}" for value in values) + "]"
