"""Planning is pure: unit ids depend on what defines an output and nothing else."""

import copy

import numpy as np

from jobs import TINY_JOB, write_job
from render.directions import DirectionSet
from render.models.base import Sampling
from render.plan import DATASET_SHARD_SEEDS, DatasetShard, VideoUnit, plan, split_seeds
from render.prepare import ResolvedModel
from render.spec import load_job


def stand_ins(job, seed=0):
    """Resolved models and direction sets without loading anything."""
    models = {key: ResolvedModel(key, spec.checkpoint, job.resolve_path("gan.pt"), "ab" * 32, Sampling(), "fp32", {})
              for key, spec in job.spec.models.items()}
    directions = np.random.default_rng(seed).normal(size=(6, 6))
    sets = {key: DirectionSet("sefa", (0,), directions, np.arange(6.0)[::-1], (0, 1), dict(spec.names))
            for key, spec in job.spec.directions.items()}
    return models, sets


def planned(tmp_path, job_dict=None, seed=0):
    job = load_job(write_job(tmp_path, job_dict))
    return plan(job, *stand_ins(job, seed))


def test_plan_has_one_video_per_direction_and_dataset_shards_per_split(tmp_path):
    units = planned(tmp_path)
    videos = [u for u in units if isinstance(u, VideoUnit)]
    shards = [u for u in units if isinstance(u, DatasetShard)]
    assert [(v.component, v.path) for v in videos] == [(0, "videos/clips/top_000_first.mp4"), (1, "videos/clips/top_001.mp4")]
    assert [(s.split, s.seeds) for s in shards] == [("train", tuple(range(10, 25))), ("test", tuple(range(25, 30)))]
    assert len({u.unit_id for u in units}) == len(units)


def test_plan_is_the_same_when_planned_again(tmp_path):
    assert planned(tmp_path) == planned(tmp_path)


def test_large_datasets_are_split_into_shards(tmp_path):
    job = copy.deepcopy(TINY_JOB)
    job["seeds"]["pairs"] = "0-99"
    shards = [u for u in planned(tmp_path, job) if isinstance(u, DatasetShard)]
    assert all(len(s.seeds) <= DATASET_SHARD_SEEDS for s in shards)
    assert [seed for s in shards for seed in s.seeds] == list(range(100))
    assert {s.rows_path for s in shards} == {f".work/datasets/pairs/{s.split}-{s.shard:05d}.jsonl" for s in shards}
    assert {s.label for s in shards} == {f"datasets/pairs ({s.split} shard {s.shard})" for s in shards}


def test_changing_a_video_setting_changes_only_the_video_ids(tmp_path):
    before = planned(tmp_path / "a")
    job = copy.deepcopy(TINY_JOB)
    job["outputs"][0]["video"]["fps"] = 24
    after = planned(tmp_path / "b", job)
    for old, new in zip(before, after):
        assert (old.unit_id == new.unit_id) == isinstance(old, DatasetShard)


def test_changing_the_directions_changes_every_id(tmp_path):
    before, after = planned(tmp_path / "a", seed=0), planned(tmp_path / "b", seed=1)
    assert not {u.unit_id for u in before} & {u.unit_id for u in after}


def test_split_seeds_keeps_everything_in_train_when_no_test_is_asked():
    assert split_seeds((1, 2, 3), 0.0) == {"train": (1, 2, 3)}
    assert split_seeds((1, 2, 3), 0.1) == {"train": (1, 2, 3)}  # 0.3 seeds round to none
