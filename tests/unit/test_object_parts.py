"""Parts of a completed object, the pure pieces: a 10,000-part layout paged and addressed by
part number (the most S3 allows, which no test upload reaches: every part but the last is
at least 5 MiB), and an upstream's GetObjectAttributes answer as AWS documents it (versitygw,
the upstream the contract suite runs against, answers no parts)."""

from __future__ import annotations

from gateway.backends.base import ObjectChecksum
from gateway.backends.local.partlayout import layout_fields, parts_page
from gateway.backends.s3.translate import object_parts_page, parse_xml
from gateway.protocol.parts import MAX_PART_NUMBER, part_span

MiB = 1024 * 1024


def test_ten_thousand_parts_of_changing_sizes() -> None:
    sizes = [5 * MiB + (n % 3) for n in range(MAX_PART_NUMBER - 1)] + [17]
    sums = [ObjectChecksum("crc32", f"{n:06d}==") for n in range(MAX_PART_NUMBER)]
    fields = layout_fields(sizes, sums)
    total = sum(sizes)
    marker, seen = 0, []
    while True:
        page = parts_page(fields, MAX_PART_NUMBER, marker, 1000)
        seen += page.parts
        if not page.truncated:
            assert page.next_marker is None
            break
        assert page.next_marker == seen[-1].number
        marker = page.next_marker
    assert [(p.number, p.size) for p in seen] == list(enumerate(sizes, start=1))
    assert [p.checksum.value for p in seen if p.checksum] == [s.value for s in sums]
    for number in (1, 2, 3, 4, 5000, 9999, 10000):
        span = part_span(fields["psz"], number, total)
        assert span is not None
        assert span.start == sum(sizes[: number - 1]) and span.length == sizes[number - 1]


AWS_ANSWER = b"""<?xml version="1.0" encoding="UTF-8"?>
<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <ObjectParts>
    <IsTruncated>true</IsTruncated>
    <MaxParts>2</MaxParts>
    <NextPartNumberMarker>3</NextPartNumberMarker>
    <PartNumberMarker>1</PartNumberMarker>
    <Part><ChecksumSHA256>c2hhMg==</ChecksumSHA256><PartNumber>2</PartNumber><Size>5242880</Size></Part>
    <Part><ChecksumSHA256>c2hhMw==</ChecksumSHA256><PartNumber>3</PartNumber><Size>5242880</Size></Part>
    <PartsCount>4</PartsCount>
  </ObjectParts>
</GetObjectAttributesResponse>"""


def test_an_upstream_that_lists_parts() -> None:
    doc = parse_xml(AWS_ANSWER)
    assert doc is not None
    page = object_parts_page(doc, 4)
    assert page.count == 4 and page.truncated and page.next_marker == 3
    assert page.parts is not None
    assert [(p.number, p.size, p.checksum) for p in page.parts] == [
        (2, 5 * MiB, ObjectChecksum("sha256", "c2hhMg==")),
        (3, 5 * MiB, ObjectChecksum("sha256", "c2hhMw==")),
    ]
    # an upstream that answers without ObjectParts: only the count is known
    assert object_parts_page({"GetObjectAttributesResponse": {}}, 4).parts is None
