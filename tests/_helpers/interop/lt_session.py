#!/usr/bin/python3
"""Drive libtorrent-rasterbar 2.0 on loopback for interop tests and benchmarks.

Run with the Debian interpreter (/usr/bin/python3). Three subcommands:

  lt_session.py session CONFIG_JSON
      Runs one torrent in one session and prints JSON lines on stdout (one event each).
      Reads JSON-line commands on stdin; EOF on stdin means "shut down".
  lt_session.py info-hash TORRENT_PATH
      Prints {"info_hash": hex, "name": ..., ...} for a .torrent file.
  lt_session.py create CONFIG_JSON
      Creates a v1-only torrent without pad files and prints {"info_hash": hex, "path": ...}.

Session config keys (JSON object):
  mode            "seed" | "download"
  torrent         path of a .torrent file (or "magnet")
  magnet          magnet URI
  save_path       directory holding (seed) or receiving (download) the data
  port            TCP listen port on 127.0.0.1 (0: let the OS pick)
  peer_id         optional 20-character peer id (default "-LT2080-" + 12 random characters)
  peers           ["host:port", ...] dialled with connect_peer once the torrent is added
  dht             bool; when true, DHT runs on the listen port with loopback-friendly settings
  dht_bootstrap   ["host:port", ...] DHT nodes to add
  recheck         bool; a seeder hashes its data instead of trusting it (seed_mode)
  exit_on_finish  bool; download mode exits after "finished" (default true)
  progress_ms     interval of "progress" events in ms (0: none; default 1000)
  settings        extra settings_pack entries, applied last

Commands on stdin (one JSON object per line):
  {"cmd": "connect", "host": "127.0.0.1", "port": 6881}
  {"cmd": "reannounce"}         force a tracker announce now, ignoring min interval
  {"cmd": "dht_announce"}
  {"cmd": "add_dht_node", "host": "127.0.0.1", "port": 6881}
  {"cmd": "status"}             emits a "progress" event now
  {"cmd": "quit"}
"""

import json
import os
import queue
import random
import string
import sys
import threading
import time

import libtorrent as lt


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def split_host_port(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def stdin_reader(commands):
    # Each line is one command; EOF (the test harness closed our stdin) means quit.
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            commands.put(json.loads(line))
        except ValueError as error:
            emit("error", message="Cannot parse command: %s" % error)
    commands.put({"cmd": "quit"})


def status_event(handle):
    st = handle.status()
    return dict(
        state=str(st.state),
        progress=st.progress,
        total_done=st.total_done,
        total_wanted=st.total_wanted,
        download_rate=st.download_payload_rate,
        upload_rate=st.upload_payload_rate,
        total_upload=st.total_payload_upload,
        total_download=st.total_payload_download,
        num_peers=st.num_peers,
        num_seeds=st.num_seeds,
    )


def run_session(config):
    mode = config["mode"]
    started = time.monotonic()
    peer_id = config.get("peer_id") or "-LT2080-" + "".join(
        random.choice(string.ascii_letters + string.digits) for _ in range(12)
    )
    if len(peer_id) != 20:
        raise SystemExit("peer_id must be 20 characters: %r" % peer_id)
    dht = bool(config.get("dht", False))
    port = int(config.get("port", 0))

    mask = (
        lt.alert_category.error
        | lt.alert_category.status
        | lt.alert_category.tracker
        | lt.alert_category.connect
        | lt.alert_category.performance_warning
    )
    if dht:
        mask |= lt.alert_category.dht
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        # Every loopback peer has the IP 127.0.0.1.
        "allow_multiple_connections_per_ip": True,
        # uTP first means a ~10 s wait before the TCP fallback against TCP-only peers.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_dht": dht,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # With a full 20-byte fingerprint the peer id is exactly this string.
        "peer_fingerprint": peer_id,
        "alert_mask": mask,
        "stop_tracker_timeout": 1,
        "dht_bootstrap_nodes": "",
        # Tests announce to 127.0.0.1 trackers.
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
    }
    if dht:
        # All loopback nodes share one IP; the default restrictions would drop them.
        settings["dht_restrict_routing_ips"] = False
        settings["dht_restrict_search_ips"] = False
        settings["dht_prefer_verified_node_ids"] = False
    settings.update(config.get("settings") or {})
    ses = lt.session(settings)

    atp = None
    if config.get("magnet"):
        atp = lt.parse_magnet_uri(config["magnet"])
    elif config.get("torrent"):
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(config["torrent"])
    else:
        raise SystemExit("Either torrent or magnet is required")
    atp.save_path = config["save_path"]
    flags = atp.flags
    flags &= ~lt.torrent_flags.auto_managed
    flags &= ~lt.torrent_flags.paused
    if mode == "seed" and not config.get("recheck", False):
        flags |= lt.torrent_flags.seed_mode
    atp.flags = flags
    handle = ses.add_torrent(atp)
    info_hash = str(handle.info_hashes().v1)

    for node in config.get("dht_bootstrap") or []:
        ses.add_dht_node(split_host_port(node))

    commands = queue.Queue()
    threading.Thread(target=stdin_reader, args=(commands,), daemon=True).start()

    progress_ms = int(config.get("progress_ms", 1000))
    exit_on_finish = bool(config.get("exit_on_finish", True))
    listen_port = None
    announced_ready = False
    finished = False
    next_progress = time.monotonic() + progress_ms / 1000.0
    quit_requested = False

    while not quit_requested:
        ses.wait_for_alert(50)
        for alert in ses.pop_alerts():
            kind = alert.what()
            if kind == "listen_succeeded":
                if alert.socket_type == lt.socket_type_t.tcp:
                    listen_port = alert.port
            elif kind == "listen_failed":
                emit("error", message=alert.message())
                return 1
            elif kind in ("torrent_error", "file_error"):
                emit("error", message=alert.message())
            elif kind == "tracker_reply":
                emit("tracker_reply", url=alert.tracker_url(), num_peers=alert.num_peers)
            elif kind == "tracker_error":
                emit("tracker_error", url=alert.tracker_url(), message=alert.message())
            elif kind == "peer_connect":
                emit("peer_connected", host=alert.endpoint[0], port=alert.endpoint[1])
            elif kind == "peer_disconnected":
                emit(
                    "peer_disconnected",
                    host=alert.endpoint[0],
                    port=alert.endpoint[1],
                    peer_id=bytes(alert.pid.to_bytes()).hex(),
                    message=alert.message(),
                )
            elif kind == "metadata_received":
                emit("metadata_received")
            elif kind == "hash_failed":
                emit("hash_failed", piece=alert.piece_index)
            elif kind == "dht_bootstrap":
                emit("dht_bootstrap")
            elif kind == "performance":
                emit("warning", message=alert.message())
            elif kind == "torrent_finished" and mode == "download" and not finished:
                finished = True
                st = handle.status()
                emit(
                    "finished",
                    seconds=round(time.monotonic() - started, 4),
                    total_done=st.total_done,
                )
                if exit_on_finish:
                    quit_requested = True

        if not announced_ready and listen_port is not None:
            state = handle.status().state
            if state not in (
                lt.torrent_status.states.checking_files,
                lt.torrent_status.states.checking_resume_data,
            ):
                announced_ready = True
                emit(
                    "listening",
                    port=listen_port,
                    info_hash=info_hash,
                    peer_id=peer_id,
                    state=str(state),
                )
                handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
                for peer in config.get("peers") or []:
                    handle.connect_peer(split_host_port(peer))

        while True:
            try:
                command = commands.get_nowait()
            except queue.Empty:
                break
            name = command.get("cmd")
            if name == "quit":
                quit_requested = True
            elif name == "connect":
                handle.connect_peer((command["host"], int(command["port"])))
            elif name == "reannounce":
                handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            elif name == "dht_announce":
                handle.force_dht_announce()
            elif name == "add_dht_node":
                ses.add_dht_node((command["host"], int(command["port"])))
            elif name == "status":
                emit("progress", **status_event(handle))
            else:
                emit("error", message="Unknown command: %r" % name)

        if progress_ms > 0 and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + progress_ms / 1000.0
            emit("progress", **status_event(handle))

    ses.pause()
    emit("exit", seconds=round(time.monotonic() - started, 4))
    return 0


def info_hash_command(path):
    ti = lt.torrent_info(path)
    files = ti.files()
    emit(
        "info",
        info_hash=str(ti.info_hashes().v1),
        name=ti.name(),
        total_size=ti.total_size(),
        piece_length=ti.piece_length(),
        num_pieces=ti.num_pieces(),
        files=[
            {"path": files.file_path(i), "size": files.file_size(i)}
            for i in range(files.num_files())
        ],
    )
    return 0


def create_command(config):
    source = os.path.abspath(config["source"])
    fs = lt.file_storage()
    # Add files in byte order of their paths (as mktorrent does) rather than lt.add_files'
    # directory-listing order, so the info dictionary is reproducible and comparable.
    name = os.path.basename(source)
    if os.path.isdir(source):
        entries = []
        for root, _dirs, names in os.walk(source):
            for file_name in names:
                full = os.path.join(root, file_name)
                rel = os.path.relpath(full, source).replace(os.sep, "/")
                entries.append((rel.encode(), rel, os.path.getsize(full)))
        for _key, rel, size in sorted(entries):
            fs.add_file(name + "/" + rel, size)
    else:
        fs.add_file(name, os.path.getsize(source))
    if fs.num_files() == 0:
        raise SystemExit("No files under %s" % source)
    # v1_only without canonical_files: no pad files, a plain BEP 3 torrent.
    ct = lt.create_torrent(fs, int(config.get("piece_length", 0)), lt.create_torrent.v1_only)
    for tier, url in enumerate(config.get("trackers") or []):
        ct.add_tracker(url, tier)
    if config.get("private"):
        ct.set_priv(True)
    if config.get("comment"):
        ct.set_comment(config["comment"])
    ct.set_creator(config.get("creator", "libtorrent"))
    lt.set_piece_hashes(ct, os.path.dirname(source))
    entry = ct.generate()
    if not config.get("creation_date", False):
        entry.pop(b"creation date", None)
    data = lt.bencode(entry)
    with open(config["output"], "wb") as out:
        out.write(data)
    ti = lt.torrent_info(config["output"])
    emit("created", info_hash=str(ti.info_hashes().v1), path=config["output"], bytes=len(data))
    return 0


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    command, argument = argv[1], argv[2]
    if command == "session":
        return run_session(json.loads(argument))
    if command == "info-hash":
        return info_hash_command(argument)
    if command == "create":
        return create_command(json.loads(argument))
    sys.stderr.write("Unknown subcommand: %s\n" % command)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
