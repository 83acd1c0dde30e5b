"""The load test's figures: throughput as a ratio to the floor measured in the same run."""

from performance.loadtest import FLOOR, Client, FloorClient, Result, Sample


def test_the_ratio_is_the_throughput_over_the_floors():
    result = Result(duration=10.0, clients=8, workers=2, floor_requests=20_000, floor_duration=10.0)
    result.samples = [Sample("read", 0.01, 200)] * 1_000
    assert result.throughput == 100.0 and result.floor_throughput == 2_000.0
    assert result.ratio == 0.05
    assert result.as_json()["ratio_to_floor"] == 0.05


def test_without_a_floor_there_is_no_ratio():
    assert Result(duration=10.0, clients=1, workers=1).ratio is None


def test_the_floor_clients_ask_for_the_bare_view_only():
    client = FloorClient(0, port=1, token="t", ids=[1], pages=1, deadline=0, result=None, lock=None)
    assert {client.next_request() for _ in range(20)} == {(FLOOR, "GET", "/healthz/", None)}
    mixed = Client(0, port=1, token="t", ids=[1], pages=1, deadline=0, result=None, lock=None)
    assert {mixed.next_request()[0] for _ in range(200)} == {"read", "upsert", "summary"}
