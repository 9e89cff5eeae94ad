"""The plain data that crosses between the program's process and the tests' (verifiers/wire.py)."""

from __future__ import annotations

import collections
import doctest
import marshal
import math
import os

import pytest

import secondtry.verifiers.wire as wire
from secondtry.verifiers.wire import MAX_FRAME, NotPlain, decode, encode_frame, recv, send


def _roundtrip(value):
    return decode(encode_frame(["r", value])[4:])[1]


def test_doctests():
    assert doctest.testmod(wire).failed == 0


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**200,
        -(3**300),
        1.5,
        -0.0,
        float("inf"),
        1e-300,
        2 + 3j,
        "",
        "héllo\ud800",
        b"\x00\xff",
        [],
        [1, [2, [3]]],
        (),
        (1, (2,)),
        {},
        {1: "a", (1, 2): [3], frozenset({1}): None, "k": {"n": 1}},
        set(),
        {1, "a", (2, 3)},
        frozenset({frozenset({1})}),
        collections.Counter("hello"),
        collections.OrderedDict([("b", 1), ("a", 2)]),
        [[[[[[[[[[1]]]]]]]]]],
    ],
)
def test_plain_values_cross_unchanged_and_exactly_typed(value):
    back = _roundtrip(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, (list, tuple)):
        assert [type(x) for x in back] == [type(x) for x in value]


def test_nan_and_defaultdict():
    assert math.isnan(_roundtrip(float("nan")))
    d = _roundtrip(collections.defaultdict(list, {"a": [1]}))
    assert type(d) is collections.defaultdict and d == {"a": [1]} and d.default_factory is None


class EqualsAll(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class MyList(list):
    pass


@pytest.mark.parametrize(
    "value, name",
    [
        (EqualsAll(1), "EqualsAll"),
        ([1, EqualsAll(2)], "EqualsAll"),
        (MyList(), "MyList"),
        (object(), "object"),
        ({1: object()}, "object"),
        ((x for x in ()), "generator"),
        (range(3), "range"),
        (print, "builtin_function_or_method"),
        (bytearray(b"x"), "bytearray"),
        (Ellipsis, "ellipsis"),
        (collections.namedtuple("P", "x")(1), "P"),
    ],
)
def test_anything_else_is_refused_on_sending(value, name):
    with pytest.raises(NotPlain, match=name):
        encode_frame(["r", value])


def test_cycles_and_depth_are_refused():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(NotPlain, match="nested too deeply"):
        encode_frame(["r", cycle])
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(NotPlain, match="nested too deeply"):
        encode_frame(["r", deep])


@pytest.mark.parametrize(
    "body",
    [
        marshal.dumps(["r", (lambda: 0).__code__]),  # a code object
        marshal.dumps(["r", ...]),
        marshal.dumps(["r", StopIteration]),
        marshal.dumps(["r", (..., "Counter", [1])]),
        marshal.dumps(["r", (..., "Evil", {})]),
        marshal.dumps("not a list"),
        marshal.dumps([]),
        b"",
        b"\xff\x00garbage",
        marshal.dumps(["r", [1]])[:-1],
    ],
)
def test_what_marshal_can_say_beyond_plain_data_is_refused_on_receiving(body):
    with pytest.raises(NotPlain):
        decode(body)


def test_a_cycle_written_by_hand_is_refused_on_receiving():
    # marshal writes a self-containing list with a back reference: the receiving side must not loop
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(NotPlain, match="nested too deeply"):
        decode(marshal.dumps(["r", cycle]))


def test_frames_over_a_pipe_and_the_size_limit():
    r, w = os.pipe()
    try:
        send(w, ["r", {"x": (1, 2)}])
        assert recv(r) == ["r", {"x": (1, 2)}]
        os.write(w, (MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(NotPlain, match="MB"):
            recv(r)
    finally:
        os.close(w)
    assert recv(r) is None  # the writer is gone
    os.close(r)
    with pytest.raises(NotPlain, match="the limit is 64 MB"):
        encode_frame(["r", b"x" * (MAX_FRAME + 10)])


def test_exceptions_are_rebuilt_by_name():
    e = wire._rebuild("ValueError", "bad", 3)
    assert type(e) is ValueError and str(e) == "bad" and e._secondtry_origin == ("ValueError", "bad", 3)
    for name in ("SystemExit", "KeyboardInterrupt", "NoSuchError", "UnicodeDecodeError", "__import__"):
        rebuilt = wire._rebuild(name, "m", None)
        assert type(rebuilt) is wire.CandidateError and str(rebuilt) == f"{name}: m"
