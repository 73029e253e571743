import re
import threading

from gateway.ids import IdGenerator


def test_ids_are_unique_across_blocks_and_threads() -> None:
    make = IdGenerator(block=7)  # small blocks: many refills
    seen: list[str] = []

    def work() -> None:
        seen.extend(make("pay") for _ in range(2000))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(set(seen)) == 8000
    assert all(re.fullmatch(r"pay_[0-9a-f]{24}", i) for i in seen)
