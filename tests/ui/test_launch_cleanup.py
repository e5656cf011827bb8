"""What the dashboard undoes at the end (a demo's throwaway directory, the standby's
postmaster) is undone exactly once, whether the main thread gets there or the hangup's
backstop does because the dashboard is stuck on its lost terminal."""

from __future__ import annotations

import threading

from pgtop.ui.launch import DashboardController


def test_cleanups_run_once_newest_first(tmp_path):
    controller = DashboardController(tmp_path)  # never launched: close() has nothing to stop
    done: list[str] = []
    controller.add_cleanup(lambda: done.append("the directory"))
    controller.add_cleanup(lambda: done.append("the standby"))
    controller.finish()
    controller.finish()
    assert done == ["the standby", "the directory"]


def test_the_backstop_waits_for_a_cleanup_the_main_thread_is_in_the_middle_of(tmp_path):
    controller = DashboardController(tmp_path)
    started, release, removed = threading.Event(), threading.Event(), threading.Event()

    def slow_removal() -> None:
        started.set()
        assert release.wait(30), "the test never let the removal end"
        removed.set()

    controller.add_cleanup(slow_removal)
    main = threading.Thread(target=controller.finish)
    main.start()
    assert started.wait(30)
    backstop_done = threading.Event()
    backstop = threading.Thread(target=lambda: (controller.finish(), backstop_done.set()))
    backstop.start()
    assert not backstop_done.wait(0.2), "the backstop went on (to os._exit) mid-removal"
    release.set()
    main.join(30)
    backstop.join(30)
    assert removed.is_set() and backstop_done.is_set()
