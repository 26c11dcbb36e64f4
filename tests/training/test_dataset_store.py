"""``focuslock dataset build`` in this process: what a store holds, restarts, extension, acquired
stacks from folders and URLs, bad input, and the lazy reader training uses."""

import dataclasses
import json
import shutil
from typing import Any

import fsspec
import numpy as np
import pytest

from controller.cli import main
from controller.optics import preset
from controller.stackio import read_stack, write_stack
from tests.cli_run import run_cli
from training.batches import Batches, fit_standardizer
from training.build import AcquiredPlan, BuildError, build_dataset
from training.cluster import ClusterChoice
from training.datagen import simulated_stack
from training.dataset import DatasetError, load_dataset, load_training_data, stack_features
from training.store import StoreError, open_store
from training.store_dataset import open_store_dataset

from .store_helpers import (
    PLAN,
    SPEC,
    assert_same_store,
    record_files,
    tiny_args,
    write_plan_stacks,
)

HERE = ClusterChoice(in_process=True)


def _build(out, plan=PLAN, **kwargs):
    return build_dataset(out, plan, SPEC, cluster=HERE, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """PLAN built in one go, in this process."""
    out = tmp_path_factory.mktemp("built") / "one-go.zarr"
    report = _build(out, mirror=True)
    assert report.built + len(report.skipped) == PLAN.count
    return out


@pytest.fixture(scope="module")
def stack_folder(tmp_path_factory):
    return write_plan_stacks(tmp_path_factory.mktemp("stacks"), PLAN)


def test_a_store_holds_each_stacks_features_labels_and_record(built):
    store = open_store(built)
    index = store.index()
    records: list[Any] = store.records()
    assert store.names() == PLAN.names()
    assert {r["status"] for r in records} == {"done", "skipped"}  # 128² dense layers can fail
    for slot, record in enumerate(records):
        kind, seed = PLAN.kinds[slot % 2], slot
        assert (record["kind"], record["seed"]) == (kind, seed)
        assert index["kind"][slot] == kind and index["seed"][slot] == seed
        if record["status"] == "skipped":
            assert "sharpness peak" in record["reason"] and index["status"][slot] == -1
            continue
        # the controller's features and training's labels of the very stack, rendered here
        stack = simulated_stack(kind, seed, PLAN.size, preset("paper"), PLAN.z_um())
        expected = stack_features(stack, record["name"], SPEC, mirror=True)
        n = stack.z_um.size
        stored = [store.read(key, np.array([slot]))[0] for key in ("features", "mirror_features")]
        np.testing.assert_array_equal(stored[0], expected.features[:n])
        np.testing.assert_array_equal(stored[1], expected.features[n:])
        np.testing.assert_array_equal(index["defocus_um"][slot], expected.defocus_um[:n])
        np.testing.assert_array_equal(index["z_um"][slot], stack.z_um)
        # the sample's parameters, seed, camera (exposure, noise) travel with the stack
        meta = record["metadata"]
        assert meta["sample"]["params"] == stack.metadata["sample"]["params"]
        assert meta["camera"]["exposure_s"] == stack.metadata["camera"]["exposure_s"]
        assert meta["noise_seed"] == seed
        assert record["true_focus_z_um"] == stack.focus_z_um
    assert store.attrs()["index"]["missing"] == 0


def test_a_stopped_build_reruns_only_the_missing_stacks_and_rewrites_none(tmp_path, built):
    out = tmp_path / "stopped.zarr"

    def stop_after_three(report):
        if report.finished == 3:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a build

    with pytest.raises(KeyboardInterrupt):
        _build(out, mirror=True, on_stack=stop_after_three)
    first = record_files(out)
    assert len(first) == 3 and open_store(out).attrs()["index"]["missing"] == 3
    report = _build(out, mirror=True)
    assert report.to_do == 3 and report.finished == 3
    after = record_files(out)
    assert all(after[k] == v for k, v in first.items())  # not one finished stack rewritten
    assert len(after) == PLAN.count
    assert_same_store(out, built, exact=True)
    assert _build(out, mirror=True).to_do == 0  # a third run has nothing to do


def test_a_half_written_stack_is_built_again(tmp_path, built):
    """A crash between a stack's features and its record leaves the stack unfinished."""
    out = tmp_path / "half.zarr"
    shutil.copytree(built, out)
    store = open_store(out)
    records: list[Any] = store.records()
    done = [i for i, r in enumerate(records) if r["status"] == "done"]
    (out / "record" / "c" / str(done[0])).unlink()
    store.group["features"][done[0]] = 0.0  # type: ignore[index]  # garbage
    assert _build(out, mirror=True).to_do == 1
    assert_same_store(out, built, exact=True)


def test_a_larger_count_extends_the_store_and_a_smaller_one_is_refused(tmp_path, built):
    out = tmp_path / "grown.zarr"
    _build(out, dataclasses.replace(PLAN, count=4), mirror=True)
    report = _build(out, mirror=True)
    assert report.to_do == 2
    assert_same_store(out, built, exact=True)
    with pytest.raises(StoreError, match="--count 3 would leave some out"):
        _build(out, dataclasses.replace(PLAN, count=3), mirror=True)


@pytest.mark.parametrize(("change", "message"), [
    ({"plan": dataclasses.replace(PLAN, kinds=("tissue",))}, "other sources"),
    ({"spec": dataclasses.replace(SPEC, pool_x=2)}, "other feature spec"),
    ({"mirror": False}, "other mirror"),
])
def test_a_rerun_with_other_options_is_refused_naming_them(built, change, message):
    before = record_files(built)
    with pytest.raises(StoreError, match=message):
        build_dataset(built, change.get("plan", PLAN), change.get("spec", SPEC),
                      mirror=change.get("mirror", True), cluster=HERE)
    assert record_files(built) == before


def test_acquired_stacks_from_a_folder_a_file_url_and_a_remote_url_alike(tmp_path,
                                                                          stack_folder, built):
    folder = tmp_path / "acquired"
    shutil.copytree(stack_folder, folder)
    good = (folder / PLAN.names()[0]).read_bytes()
    (folder / "broken.ome.tif").write_bytes(good[: len(good) // 3])  # a copy cut short
    memory = fsspec.filesystem("memory")
    for path in folder.iterdir():  # a stand-in for s3:// here: fsspec's in-memory file system
        memory.pipe(f"/bucket/stacks/{path.name}", path.read_bytes())
    try:
        outs = []
        for i, url in enumerate((str(folder), folder.as_uri(), "memory://bucket/stacks")):
            outs.append(tmp_path / f"acquired-{i}.zarr")
            report = build_dataset(outs[-1], AcquiredPlan(url), SPEC, cluster=HERE, mirror=True)
            broken = dict(report.skipped)["broken.ome.tif"]
            assert "broken.ome.tif" in broken and "not an OME-TIFF" in broken
            assert ("memory://" in broken) == url.startswith("memory://")
    finally:
        memory.rm("/bucket", recursive=True)
    for out in outs[1:]:
        assert_same_store(outs[0], out, exact=True, reasons=False)
    # the stacks' files give the store the simulated build gives
    acquired, simulated = open_store(outs[0]), open_store(built)
    slots = [acquired.names().index(n) for n in simulated.names()]
    np.testing.assert_array_equal(acquired.read("features")[slots], simulated.read("features"))
    np.testing.assert_array_equal(acquired.index()["defocus_um"][slots],
                                  simulated.index()["defocus_um"])


def test_a_folder_that_gains_files_extends_the_store(tmp_path, stack_folder):
    folder = tmp_path / "growing"
    folder.mkdir()
    names = sorted(p.name for p in stack_folder.iterdir())
    for name in names[:3]:
        shutil.copy(stack_folder / name, folder / name)
    out = tmp_path / "growing.zarr"
    assert build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE).to_do == 3
    for name in names[3:]:
        shutil.copy(stack_folder / name, folder / name)
    before = record_files(out)
    assert build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE).to_do == 3
    assert all(record_files(out)[k] == v for k, v in before.items())
    assert open_store(out).names() == names


def test_a_store_reads_as_the_folder_of_its_stacks(tmp_path, stack_folder):
    out = tmp_path / "from-folder.zarr"
    build_dataset(out, AcquiredPlan(str(stack_folder)), SPEC, cluster=HERE, mirror=True)
    for mirror in (False, True):
        stored = load_training_data(out, SPEC, mirror=mirror)
        folder = load_dataset(stack_folder, SPEC, cache_dir=tmp_path / f"cache-{mirror}",
                              mirror=mirror, progress=False)
        for key in ("row", "defocus_um", "true_defocus_um", "stack", "plane", "mirrored"):
            np.testing.assert_array_equal(getattr(stored, key), getattr(folder, key))
        assert (stored.names, stored.samples) == (folder.names, folder.samples)
        assert sorted(stored.skipped) == sorted(folder.skipped)
        np.testing.assert_array_equal(stored.features, folder.features)
        # the same batches, epoch after epoch, whichever the source
        standardizer = fit_standardizer(stored, max_rows=100)
        same = fit_standardizer(folder, max_rows=100)
        np.testing.assert_array_equal(standardizer.mean, same.mean)
        np.testing.assert_array_equal(standardizer.std, same.std)
        a, b = (Batches(d, standardizer, 32, seed=3, max_rows=100) for d in (stored, folder))
        for _ in range(2):
            for i in range(len(a)):
                np.testing.assert_array_equal(a[i][0], b[i][0])
                np.testing.assert_array_equal(a[i][1], b[i][1])
            a.on_epoch_end()
            b.on_epoch_end()


def test_batches_give_every_row_once_an_epoch_in_a_new_order(built):
    data = open_store_dataset(built, SPEC, mirror=True)
    standardizer = fit_standardizer(data)
    np.testing.assert_allclose(standardizer.mean, data.features.mean(axis=0), atol=1e-5)
    batches = Batches(data, standardizer, 50, seed=0, max_rows=120)  # several blocks
    epochs = []
    for _ in range(2):
        heads = np.concatenate([batches[i][1] for i in range(len(batches))])
        labels = heads[:, 0]
        assert sorted(labels) == sorted(data.defocus_um)
        np.testing.assert_array_equal(heads[:, 1], np.abs(labels))  # the distance head's
        epochs.append(labels)
        batches.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_training_reads_only_the_chunks_of_the_stacks_it_needs(tmp_path, built):
    out = tmp_path / "partly-damaged.zarr"
    shutil.copytree(built, out)
    data = open_store_dataset(out, SPEC)
    wanted = data.stack == data.stack[0]
    expected = data.features[wanted]
    for chunk in (out / "features" / "c").iterdir():  # every other stack's features ruined
        if chunk.name != str(open_store(out).names().index(data.names[data.stack[0]])):
            for f in chunk.rglob("*"):
                if f.is_file():
                    f.write_bytes(b"not zstd")
    np.testing.assert_array_equal(data.features_of(np.flatnonzero(wanted)), expected)
    with pytest.raises(Exception, match=r"(?i)zstd|decompress|frame"):
        _ = data.features  # the ruined chunks are really there to be read


def test_whole_kinds_can_be_held_out(built):
    data = open_store_dataset(built, SPEC)
    kept = data.without_kinds(["dense-cells"])
    assert {kept.samples[i] for i in kept.present()} == {"sparse-cells"}
    assert kept.summary()["n_stacks"] == sum(s == "sparse-cells" for s in data.samples)
    train, val = kept.split(0.5, seed=0)
    assert set(train.present()).isdisjoint(val.present())
    with pytest.raises(DatasetError, match="no stack of sample kind 'tissue'"):
        data.without_kinds(["tissue"])


def test_a_store_of_other_features_or_without_mirror_is_refused(built, tmp_path):
    with pytest.raises(DatasetError, match="features were built with"):
        open_store_dataset(built, dataclasses.replace(SPEC, patch=128))
    out = tmp_path / "plain.zarr"
    shutil.copytree(built, out)
    store = open_store(out)
    store.group.attrs["layout"] = {**store.attrs()["layout"], "mirror": False}
    with pytest.raises(DatasetError, match="built without --mirror"):
        open_store_dataset(out, SPEC, mirror=True)
    del store.group.attrs["index"]  # a build killed while it wrote the index
    with pytest.raises(StoreError, match=r"index is missing.*Rerun the build"):
        open_store_dataset(out, SPEC)


def test_the_command_builds_reports_and_refuses_bad_output(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    code, _ = run_cli(["dataset", "build", str(out), *tiny_args(), "--in-process"], capsys)
    assert code == 0
    assert main(["dataset", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["stacks"]["done"] + info["stacks"]["skipped"] == PLAN.count
    assert {s["stack"] for s in info["skipped"]} <= set(PLAN.names())
    assert 0 < info["bytes_per_stack"] < 1_000_000
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run_cli(["dataset", "build", str(blocker / "out.zarr"), *tiny_args(),
                         "--in-process"], capsys)
    assert code == 2 and str(blocker) in err and "cannot create the folder" in err
    not_a_store = tmp_path / "photos"
    not_a_store.mkdir()
    code, err = run_cli(["dataset", "build", str(not_a_store), *tiny_args(), "--in-process"],
                        capsys)
    assert code == 2 and "photos: exists and is not a dataset store" in err
    code, err = run_cli(["dataset", "build", str(out), "--from", str(tmp_path), "--count", "3"],
                        capsys)
    assert code == 2 and "--count" in err
    asymmetric = tmp_path / "pi-hq.zarr"
    code, err = run_cli(["dataset", "build", str(asymmetric), *tiny_args(), "--preset", "pi-hq",
                         "--mirror", "--in-process"], capsys)
    assert code == 2 and "'autofocus' is not symmetric" in err and not asymmetric.exists()
    code, err = run_cli(["dataset", "build", str(tmp_path / "x.zarr"), "--from",
                         str(tmp_path / "nowhere"), "--in-process"], capsys)
    assert code == 2 and "nowhere: no such folder" in err
    too_small = tmp_path / "small.zarr"  # frames smaller than a feature patch: nothing is made
    code, err = run_cli(["dataset", "build", str(too_small), *tiny_args(), "--feature-patch",
                         "256", "--in-process"], capsys)
    assert code == 2 and "smaller than one 256x256 feature patch" in err
    assert not too_small.exists()


def test_stacks_shorter_than_the_first_fit_and_another_frame_size_is_skipped(tmp_path,
                                                                            stack_folder):
    folder = tmp_path / "mixed"
    shutil.copytree(stack_folder, folder)
    system = preset("paper")
    long = simulated_stack("sparse-cells", 0, PLAN.size, system, np.arange(-6, 7.0))
    write_stack(folder / "a-long.ome.tif", long)  # first by name: 13 planes, the others 11
    out = tmp_path / "mixed.zarr"
    report = build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE)
    assert "a-long.ome.tif" not in dict(report.skipped)
    store = open_store(out)
    assert store.layout.planes == 13
    planes = store.index()["planes"]
    assert planes[0] == 13 and set(planes[1:]) <= {0, 11}
    assert np.isnan(store.index()["z_um"][1:, 11:]).all()
    stored = load_training_data(out, SPEC)
    in_memory = load_dataset(folder, SPEC, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(stored.features, in_memory.features)
    np.testing.assert_array_equal(stored.defocus_um, in_memory.defocus_um)
    np.testing.assert_array_equal(stored.plane, in_memory.plane)
    write_stack(folder / "z-small.ome.tif", simulated_stack("sparse-cells", 0, 64, system,
                                                            PLAN.z_um()))
    write_stack(folder / "z-longer.ome.tif", simulated_stack("sparse-cells", 1, PLAN.size,
                                                             system, np.arange(-7, 8.0)))
    report = build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE)
    assert dict(report.skipped) == {
        "z-small.ome.tif": "frames of 64x64 pixels; the dataset's are 128x128",
        "z-longer.ome.tif": "15 planes; the dataset holds at most 13 per stack (its first "
                            "stack's)"}


def test_skipped_stacks_stay_skipped_unless_retried(tmp_path, stack_folder):
    folder = tmp_path / "fixable"
    shutil.copytree(stack_folder, folder)
    name = PLAN.names()[0]
    good = (folder / name).read_bytes()
    (folder / name).write_bytes(good[:1000])
    out = tmp_path / "fixable.zarr"
    assert name in dict(build_dataset(out, AcquiredPlan(str(folder)), SPEC,
                                      cluster=HERE).skipped)
    (folder / name).write_bytes(good)  # the file mended
    assert build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE).to_do == 0
    report = build_dataset(out, AcquiredPlan(str(folder)), SPEC, cluster=HERE,
                           retry_skipped=True)
    assert report.built == 1 and name not in dict(report.skipped)


def test_the_first_stacks_can_be_kept_as_files_to_look_at(tmp_path):
    out = tmp_path / "kept.zarr"
    report = _build(out, keep_stacks=2)
    kept = sorted((tmp_path / "kept-stacks").iterdir())
    assert [p.name for p in kept] == sorted(PLAN.names()[:2])
    store = open_store(out)
    for path in kept:
        slot = store.names().index(path.name)
        if store.index()["status"][slot] == 1:
            n = store.index()["planes"][slot]
            np.testing.assert_array_equal(
                stack_features(read_stack(path), path.name, SPEC).features,
                store.read("features", np.array([slot]))[0][:n])
    assert report.finished == PLAN.count
    with pytest.raises(BuildError, match="--keep-stacks"):
        build_dataset(tmp_path / "x.zarr", AcquiredPlan(str(tmp_path)), SPEC, keep_stacks=1)


def test_varied_instruments_give_each_stack_its_own_drawn_instrument(tmp_path):
    """Each stack's record names the instrument its seed drew; the store's plan names the
    ranges; and a rerun without --vary-instrument is refused (other sources)."""
    from controller.sim.instrument import InstrumentVariation

    plan = dataclasses.replace(PLAN, count=2, vary_instrument=True)
    out = tmp_path / "varied.zarr"
    _build(out, plan)
    store = open_store(out)
    assert store.plan["instrument_variation"] == InstrumentVariation().to_dict()
    drawn = [r["metadata"]["instrument"] for r in store.records() if r is not None]
    assert drawn == [InstrumentVariation().draw(PLAN.seed + slot).to_dict() for slot in (0, 1)]
    assert drawn[0] != drawn[1]
    with pytest.raises(StoreError, match="other sources"):
        _build(out, dataclasses.replace(plan, vary_instrument=False))
