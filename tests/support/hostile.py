"""Hypothesis strategies for what a lock table, a bucket or a stream may hold: mostly garbage, some of it
almost Terraform's own formats (the interesting edge), all of it hostile."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

REGION = "ap-northeast-2"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/terraform-state-lock/stream/2026-11-25T00:00:00.000"
LOCK_FIELDS = ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-", "a/b", "$(touch pwned)", "'", "\x1b[2J", "\u202e", "x" * 2000, "env:/w/k"]),
    st.lists(lone_surrogates | st.text(max_size=3), max_size=4).map("".join),
)
times = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,12})?(Z|[+-]\d{2}:\d{2})\Z"),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z"]),
    hostile_text,
)


@st.composite
def lock_texts(draw: st.DrawFn) -> str:
    """A ``Info`` value / ``.tflock`` body: arbitrary text, or a JSON object close to Terraform's LockInfo."""
    if draw(st.booleans()):
        return draw(st.one_of(st.text(max_size=60), st.just("[" * 5000), json_values.map(json.dumps)))
    doc: dict[str, Any] = {}
    for name in LOCK_FIELDS:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing field
        if name == "Created":
            doc[name] = draw(times | json_values)
        else:
            doc[name] = draw(hostile_text if draw(st.integers(0, 4)) else json_values)
    doc.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()))  # ASCII: "\ud800" escapes stay lone surrogates


def _typed(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"S": v}, inner),
        st.builds(lambda v: {"N": v}, st.text(max_size=8)),
        st.just({"NULL": True}),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
        st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=5), max_size=2)),
    )


attribute_values = st.one_of(_typed(hostile_text), json_values)


@st.composite
def lock_table_items(draw: st.DrawFn) -> Any:
    """A low-level (typed) item: sometimes not even a map."""
    if draw(st.integers(0, 19)) == 0:
        return draw(json_values)
    item: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        item["LockID"] = draw(_typed(st.one_of(hostile_text, st.sampled_from(["b/k", "b/k-md5", "/k", "b/", "b/-md5"]))))
    kind = draw(st.sampled_from(["Info", "Digest", "both", "neither"]))
    if kind in ("Info", "both"):
        item["Info"] = draw(st.one_of(st.builds(lambda t: {"S": t}, lock_texts()), attribute_values))
    if kind in ("Digest", "both"):
        item["Digest"] = draw(st.one_of(st.builds(lambda t: {"S": t}, st.from_regex(r"\A[0-9a-fA-F]{30,33}\Z")), attribute_values))
    item.update(draw(st.dictionaries(st.text(max_size=6), attribute_values, max_size=2)))
    return item


@st.composite
def stream_records(draw: st.DrawFn, sequence: str = "1") -> dict[str, Any]:
    """One record in Lambda's DynamoDB-stream shape, with any part of it missing or wrong."""
    images = {name: draw(lock_table_items()) for name in ("NewImage", "OldImage") if draw(st.booleans())}
    stream: Any = {
        "ApproximateCreationDateTime": draw(
            st.one_of(
                st.just(1764028800),
                st.sampled_from([float("inf"), float("nan"), 1e300, -(10**20), "soon"]),
                st.floats(),
                st.integers(-(10**20), 10**20),
                hostile_text,
            )
        ),
        "Keys": {"LockID": {"S": "b/k"}},
        "SequenceNumber": sequence,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        **images,
    }
    if draw(st.integers(0, 19)) == 0:
        stream = draw(json_values)
    record: dict[str, Any] = {
        "eventID": sequence,
        "eventName": draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]) | hostile_text),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": stream,
        "eventSourceARN": draw(st.just(STREAM_ARN) | hostile_text),
    }
    for name in draw(st.lists(st.sampled_from(sorted(set(record) - {"dynamodb"})), max_size=2, unique=True)):
        del record[name]
    return record
