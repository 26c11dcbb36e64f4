"""The loop's commands from the command line: arguments, config errors, files written."""

from controller.cli import main
from controller.stackio import read_stack


def test_collect_writes_stacks_on_the_virtual_microscope(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(f'log_dir = "{tmp_path / "logs"}"\n'
                      '[sim]\nstart_z_um = 2.0\nframe_size = 128\n')
    code = main(["collect", "--config", str(config), "--out", str(tmp_path / "stacks"),
                 "--positions", "2", "--range", "3", "--step", "1.5"])
    assert code == 0
    files = sorted((tmp_path / "stacks").glob("*.ome.tif"))
    assert [f.name for f in files] == ["position-000.ome.tif", "position-001.ome.tif"]
    stack = read_stack(files[0])
    assert stack.z_um.tolist() == [-1.0, 0.5, 2.0, 3.5, 5.0]
    assert stack.images.shape[:2] == (2, 5)
    assert read_stack(files[1]).metadata["position"] == 1
    assert "wrote" in capsys.readouterr().out


def test_a_bad_config_is_one_clear_line(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[lock]\ngain = 3\n")
    assert main(["lock", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"focuslock lock: error: {config}: lock.gain: must be in (0, 1], got 3"


def test_lock_focus_first_locks_where_focus_now_ended(tmp_path, capsys):
    # the bundled model on the virtual microscope's own sample, finishing on the sharpness
    config = tmp_path / "c.toml"
    config.write_text(f'log_dir = "{tmp_path / "logs"}"\n'
                      '[sim]\nstart_z_um = 6.0\nframe_size = 1024\n'
                      '[focus]\nsharpness_finish_um = 1.5\n')
    assert main(["lock", "--config", str(config), "--focus-first", "--duration", "2"]) == 0
    out = capsys.readouterr().out
    assert "focus now: in focus after" in out and "focused on the sharpness peak" in out
    assert "lock ended locked" in out


def test_lock_focus_first_does_not_lock_where_focus_now_failed(tmp_path, capsys):
    config = tmp_path / "c.toml"  # on 512² frames the bundled model's patches disagree
    config.write_text(f'log_dir = "{tmp_path / "logs"}"\n'
                      '[sim]\nstart_z_um = 6.0\nframe_size = 512\n')
    assert main(["lock", "--config", str(config), "--focus-first", "--duration", "2"]) == 1
    captured = capsys.readouterr()
    assert "focus now: FAILED after 0 moves" in captured.out
    assert "lock: not started, focus now did not end in focus" in captured.err
    assert "step " not in captured.out  # no lock step was made
