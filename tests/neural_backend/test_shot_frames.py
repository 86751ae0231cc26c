"""Held frames: a failed refinement puts its frames back, unless the client ended the shot meanwhile."""

from __future__ import annotations

from serving_helpers import small_passes

from neural_backend.serving.held_frames import ShotFrames


def held(frames: ShotFrames, shot: str) -> list[int]:
    taken = frames.take(shot) if frames.count() else []
    frames.restore(shot, taken)
    return [p.frame for p in taken]


def test_failed_refinement_puts_frames_back_and_a_newer_upload_wins() -> None:
    frames = ShotFrames()
    for number in (1, 2):
        frames.add(small_passes(number, shot="a"))
    taken = frames.take("a")
    assert frames.count() == 0
    newer = small_passes(2, shot="a", size=8)
    frames.add(newer)  # the client fixed frame 2 while the refinement ran
    frames.restore("a", taken)
    back = frames.take("a")
    assert [p.frame for p in back] == [1, 2] and back[1].beauty.shape == (8, 8, 3)


def test_ending_the_shot_while_its_frames_are_taken_drops_them_for_good() -> None:
    frames = ShotFrames()
    frames.add(small_passes(1, shot="a"))
    frames.add(small_passes(1, shot="b"))
    taken = frames.take("a")
    frames.drop("a")  # end_shot, answered while the cancelled refinement still runs
    frames.restore("a", taken)
    assert frames.count() == 1 and held(frames, "b") == [1]
    # The mark is spent: the next failed refinement of a new shot "a" gets its frames back.
    frames.add(small_passes(3, shot="a"))
    frames.restore("a", frames.take("a"))
    assert held(frames, "a") == [3]


def test_a_refined_shot_leaves_no_mark_behind() -> None:
    frames = ShotFrames()
    frames.add(small_passes(1, shot="a"))
    frames.take("a")
    frames.done("a")
    frames.drop("a")  # ending a finished shot
    frames.add(small_passes(2, shot="a"))
    frames.restore("a", frames.take("a"))
    assert held(frames, "a") == [2]
