"""A reference reader of InfluxDB line protocol, for tests: what InfluxDB 1.x makes of a line.

Rules (checked against a real influxd 1.6.7 by ``tests/integration/test_influx_escaping.py``):
measurement names unescape ``\\,`` and ``\\ ``; tag keys, tag values and field keys unescape
``\\,``, ``\\=`` and ``\\ ``; any other backslash is literal. String field values are quoted and
unescape ``\\"`` and ``\\\\``; a newline inside the quotes belongs to the value. Integers end in
``i``; ``true``/``false`` are booleans; other numbers are floats.
"""

from __future__ import annotations

from dataclasses import dataclass

_MEASUREMENT_ESCAPES = ", "
_KEY_ESCAPES = ",= "


@dataclass
class ReadPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    time_ns: int


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} at {self.at} in {self.text!r}")
        self.at += 1

    def token(self, stops: str, escapes: str) -> str:
        out: list[str] = []
        text = self.text
        while self.at < len(text) and text[self.at] not in stops:
            if text[self.at] == "\\" and self.at + 1 < len(text) and text[self.at + 1] in escapes:
                out.append(text[self.at + 1])
                self.at += 2
            else:
                out.append(text[self.at])
                self.at += 1
        return "".join(out)

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        text = self.text
        while True:
            if self.at >= len(text):
                raise ValueError(f"unterminated string in {text!r}")
            char = text[self.at]
            if char == "\\" and self.at + 1 < len(text) and text[self.at + 1] in '"\\':
                out.append(text[self.at + 1])
                self.at += 2
            elif char == '"':
                self.at += 1
                return "".join(out)
            else:
                out.append(char)
                self.at += 1

    def value(self) -> float | int | bool | str:
        if self.peek() == '"':
            return self.string()
        raw = self.token(", \n", "")
        if raw.endswith("i"):
            return int(raw[:-1])
        if raw in ("true", "false"):
            return raw == "true"
        return float(raw)

    def point(self) -> ReadPoint:
        measurement = self.token(", \n", _MEASUREMENT_ESCAPES)
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.at += 1
            key = self.token("=", _KEY_ESCAPES)
            self.expect("=")
            tags[key] = self.token(", \n", _KEY_ESCAPES)
        self.expect(" ")
        fields: dict[str, float | int | bool | str] = {}
        while True:
            key = self.token("=", _KEY_ESCAPES)
            self.expect("=")
            fields[key] = self.value()
            if self.peek() != ",":
                break
            self.at += 1
        self.expect(" ")
        time_ns = int(self.token(" \n", ""))
        return ReadPoint(measurement, tags, fields, time_ns)


def read_lines(body: str) -> list[ReadPoint]:
    """Every point in a body of lines separated by ``\\n`` (newlines in quoted strings are values)."""
    return [point for point, _, _ in read_located_lines(body)]


def read_located_lines(body: str) -> list[tuple[ReadPoint, str, int]]:
    """Every point of ``body`` with its own text and the physical line (from 1) it starts on."""
    reader = _Reader(body)
    located: list[tuple[ReadPoint, str, int]] = []
    while reader.at < len(body):
        start = reader.at
        point = reader.point()
        located.append((point, body[start : reader.at], body.count("\n", 0, start) + 1))
        if reader.at < len(body):
            reader.expect("\n")
    return located
