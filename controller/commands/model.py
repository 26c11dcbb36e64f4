"""``focuslock model install | rollback | list``: the installed-models area on the box
(controller/installed_models.py, docs/calibrate.md), without TensorFlow.

After an install or a rollback the command asks the service at the config's address to reload
its model (``--no-reload``: it does not), where the config reads the store's current bundle.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from controller.config import Config, load_config

if TYPE_CHECKING:
    from controller.installed_models import InstalledBundle


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = subparsers.add_parser(
        "model", help="install a model bundle into the box (atomically), roll back, list",
        description="The box's installed bundles live in model.store: one folder each, the link "
                    "'current' (what model.bundle = \"installed\" reads) and 'previous'.")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install", help="check a bundle against the configured hardware, copy it into the "
                        "store and make it current (the current one becomes previous)")
    install.add_argument("bundle", type=Path, metavar="BUNDLE", help="model bundle folder")
    _options(install)
    install.set_defaults(func=run_install)
    rollback = actions.add_parser(
        "rollback", help="make the previous bundle current again (a second rollback undoes it)")
    _options(rollback)
    rollback.set_defaults(func=run_rollback)
    listing = actions.add_parser("list", help="the installed bundles, current and previous")
    _config_option(listing)
    listing.set_defaults(func=run_list)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path,
                        help="TOML config (default: built-in defaults); the service's own, so "
                             "the store and the hardware are the ones it uses")


def _options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument("--no-reload", action="store_true",
                        help="do not ask the running service to reload its model")


def run_install(args: argparse.Namespace) -> int:
    from controller.installed_models import install

    config = load_config(args.config)
    announce(config, "installed", install(config, args.bundle), reload=not args.no_reload)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from controller.installed_models import rollback

    config = load_config(args.config)
    announce(config, "rolled back to", rollback(config), reload=not args.no_reload)
    return 0


def announce(config: Config, done: str, bundle: InstalledBundle, *, reload: bool) -> None:
    """Say what is current now, and tell the service (or say why it was not told)."""
    from controller.installed_models import reads_store
    from controller.service.client import reload_service

    print(f"{done} {bundle.summary()}")
    if not reads_store(config):
        print(f"note: model.bundle = {config.model.bundle!r} does not read the installed "
              f"bundles; set model.bundle = \"installed\" for the box to use them")
    elif reload:
        print(reload_service(config))


def run_list(args: argparse.Namespace) -> int:
    from controller.installed_models import configured_bundle, listing, reads_store

    config = load_config(args.config)
    store = listing(config)
    reads = ("the config reads its current bundle" if reads_store(config)
             else f"the config reads {configured_bundle(config) or 'no network'}, not the store")
    print(f"model store {store.store} ({reads})")
    if not store.bundles:
        print("nothing installed yet")
        return 0
    for role, bundle in (("current", store.current), ("previous", store.previous)):
        print(f"{role + ':':<10}{'--' if bundle is None else bundle.summary()}")
    print(f"installed ({len(store.bundles)}, oldest first):")
    marks = {b.path.resolve(): role for role, b in (("previous", store.previous),
                                                     ("current", store.current)) if b}
    for bundle in store.bundles:
        mark = marks.get(bundle.path.resolve(), "")
        print(f"  {bundle.name}{'  (' + mark + ')' if mark else ''}")
    return 0
