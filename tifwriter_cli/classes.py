"""The class table: what each label value means (name) and how it is drawn (colour).

A canvas may carry a :class:`ClassTable` (``init --classes``,
``CanvasSpec(classes=...)``). It is stored in the staging unit (canvas
attribute ``classes``, JSON), written into the TIFF's provenance line and
read back by ``info``, ``preview`` (legend names and colours) and
``export-annotations`` (QuPath classifications, ASAP groups).

The forms :func:`parse_classes` accepts (docs/guide.md, "Class names"):

* ``0=background,1=tumour:#e41a1c,2=stroma`` - value=name, optionally
  ``:#rrggbb`` (or ``#rgb``);
* ``background,tumour,stroma`` - names only, for values 0, 1, 2, ...;
* ``FILE.json`` - ``{"0": "background", "1": {"name": "tumour", "color":
  "#e41a1c"}}`` or a list ``[{"value": 1, "name": "tumour", "color":
  [228, 26, 28]}, ...]`` (``colour`` is accepted for ``color``); names may
  hold any character there.

Classes without a colour get :data:`DEFAULT_PALETTE`'s colour of their
value. The palette was chosen to stay visible over H&E: every colour of
classes 1 and up is at least 45 CIE76 units (Delta E) away from the
reference stain colours in :data:`HE_REFERENCE` (haematoxylin, eosin,
stroma, red cells, glass), and each next one is the farthest from those and
from the colours before it (farthest-point sampling over a 6-level RGB
grid for classes 1-23, then a 16-level one for 24-255). Class 0 is dark
grey. Red on pink, the old first colour, is 20 units from red cells.

In the TIFF the table travels in ImageDescription's provenance line as
``classes=0:background:282828,1:tumour:e41a1c``. Names are
percent-encoded there, and any letter that would complete ``xml`` or
``DICOM`` (ASAP's TIFF reader declines descriptions containing them) is
encoded too, so no class name can make ASAP refuse the file.

This module imports neither numpy nor click: the CLI validates
``--classes`` while parsing options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import InvalidOptionError

__all__ = [
    'DEFAULT_PALETTE',
    'HE_REFERENCE',
    'ClassTable',
    'LabelClass',
    'default_colour',
    'parse_classes',
]

#: Default colour of label value v: ``DEFAULT_PALETTE[v]`` for v < 256; larger
#: values reuse entries 1..255 (see the module docstring for how they were
#: chosen: the first 23 on a coarse RGB grid, the rest on a finer one).
DEFAULT_PALETTE: tuple[str, ...] = (
    '282828',  # 0: background, dark grey
    '00cc00', 'ffcc00', '003300', '0000ff', '00ffcc', 'ff33ff', 'ff0000', '996633', '0099cc',
    '669933', 'ffff99', 'ccff00', '006666', 'ff9933', '00cccc', '00cc66', '009966', '3399ff',
    '6600cc', '666600', 'ff6633', 'cc66ff', '99ff66',
    # 24..255
    '440000', '001111', 'dd00aa', 'aabb00', 'eebb77', '554433', '99dd99', '778866', '0055ff',
    'bb9911', 'aa4400', 'ffff55', '119900', 'bb00ff', 'aaaa55', '00ff00', '006611', 'aadd66',
    '00ff77', 'ff9966', '553300', '006644', '339988', 'aa00cc', '88ff99', '88cc00', '88ff22',
    'bb7711', '222200', 'ffcc55', '558899', '445522', '22ddff', '224433', 'cc1100', '44ffee',
    '44cc88', 'cccc55', '55ccaa', 'ff7700', '009944', '77aa77', '66cc44', '8855ff', 'aa8833',
    'ff55ee', '4433ff', '773300', '556666', '00ffaa', '889911', 'ccff66', '998855', '33aabb',
    '66bbff', '774433', 'eeaa11', '778844', 'ffff00', '88ffbb', '448844', '446611', '442211',
    'ddcc22', 'bb6633', '665522', '77aa00', 'ccee99', '77bb66', 'cc6600', 'bbdd00', '775500',
    '66ff55', '0022cc', 'bb44ff', '221100', '00cc44', '002211', 'ddcc77', '8800ff', 'cc4400',
    'ffee66', 'ff5500', 'bbff99', 'cc8855', 'cc33cc', '115566', 'eeff77', 'ff00cc', '338811',
    'eeaa44', '995500', 'ff8844', '99bb55', '007799', '666644', '66cc66', 'bbff44', '446644',
    '44ccff', '44bb00', '77bb44', '888822', '886644', '55ee77', '334444', '77dd00', '225522',
    '443311', '558877', '444400', 'cc11ee', 'ddbb55', '007766', '11ff44', 'ccdd44', 'bbcc77',
    '003333', '00aaff', 'dddd00', '99ee77', '008899', '0000dd', '9933ff', '447700', '99bb77',
    'dd8844', '00eeff', 'ff4422', '776655', 'ee55ff', '22ddaa', '22aa88', '55aa00', '223300',
    '552200', 'ffdd77', '007744', '118866', '66eecc', 'ddff44', '005544', '447744', 'aaff00',
    '00aaaa', 'ccbb33', 'aadd44', 'ee22dd', '33bb44', '224400', '44ee00', '00ddcc', '33bb66',
    '887733', '55aa66', 'ff9900', '33dd88', '55bb88', '004422', '00bbdd', '00bbaa', '559977',
    '449999', '333322', '998800', '9900dd', '667766', '6633ee', '334422', 'cc9955', '99bb33',
    '0044ff', '55aa44', '666622', '77dd88', '667700', 'dd8800', '447777', '994411', '997700',
    '777744', '668833', '664422', 'aaaa33', '22eeaa', 'ff0022', '00ee88', '55dd44', '77ddaa',
    '996600', '889966', '2299dd', '774400', 'bbaa66', '008844', '668800', '445544', 'bb8811',
    'ffaa66', '00bb88', '88dd44', 'bb7733', 'dd7744', 'ddff88', 'ffee11', 'ffdd44', '0099bb',
    '77ee66', '885533', '005511', '22ee55', 'eeee77', 'aaaa00', 'bbdd77', '995522', '66ffaa',
    'ffbb66', '22aa66', '338833', 'ffaa33', '00eecc', '99ff44', '559911', 'ff22bb', '889944',
    '557733', '99dd77', '00bbff', 'ee33cc', '999955', '668855', 'aa9933',
)
#: Colours of H&E-stained tissue the palette keeps away from (RGB).
HE_REFERENCE: dict[str, tuple[int, int, int]] = {
    'haematoxylin': (80, 50, 140),
    'dark nuclei': (50, 30, 90),
    'eosin': (230, 130, 180),
    'stroma': (240, 185, 215),
    'red cells': (200, 40, 90),
    'glass': (245, 245, 245),
    'mixed': (170, 110, 170),
}
#: Largest class value (uint32 labels).
MAX_VALUE = 2**32 - 1
MAX_NAME_LENGTH = 200
#: Words ASAP's TIFF reader refuses in ImageDescription (tiff/compat.py has
#: the reader rule; kept literal here so this module stays import-light).
_ASAP_WORDS = ('xml', 'dicom')
_HEX = re.compile(r'#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})')


def default_colour(value: int) -> tuple[int, int, int]:
    """RGB of label ``value`` when the table gives none."""
    index = value if value < len(DEFAULT_PALETTE) else 1 + (value - 1) % (len(DEFAULT_PALETTE) - 1)
    # (one rule: preview's LABEL_PALETTE is this table)
    return _rgb(DEFAULT_PALETTE[index])


@dataclasses.dataclass(frozen=True)
class LabelClass:
    """One class: its label value, name and display colour (RGB 0..255)."""

    value: int
    name: str
    colour: tuple[int, int, int]

    @property
    def hex(self) -> str:
        """Colour as ``#rrggbb``."""
        return '#' + ''.join(f'{c:02x}' for c in self.colour)


@dataclasses.dataclass(frozen=True)
class ClassTable:
    """Classes by value, validated: values unique non-negative integers,
    names unique, non-empty and printable."""

    classes: tuple[LabelClass, ...]

    def __post_init__(self) -> None:
        checked = sorted((_checked_class(c) for c in self.classes), key=lambda c: c.value)
        if not checked:
            raise InvalidOptionError('a class table needs at least one class')
        seen_values: set[int] = set()
        seen_names: dict[str, int] = {}
        for entry in checked:
            if entry.value in seen_values:
                raise InvalidOptionError(f'class value {entry.value} is given twice')
            seen_values.add(entry.value)
            folded = entry.name.casefold()
            if folded in seen_names:
                raise InvalidOptionError(
                    f'class name {entry.name!r} is given for values {seen_names[folded]} and '
                    f'{entry.value} (names must differ)'
                )
            seen_names[folded] = entry.value
        object.__setattr__(self, 'classes', tuple(checked))

    # -- lookups ---------------------------------------------------------------
    def __iter__(self) -> Iterator[LabelClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(c.value for c in self.classes)

    def get(self, value: int) -> LabelClass | None:
        for entry in self.classes:
            if entry.value == value:
                return entry
        return None

    def name_of(self, value: int) -> str:
        """The class name of ``value``, or the value itself as text."""
        entry = self.get(int(value))
        return entry.name if entry is not None else str(int(value))

    def colour_of(self, value: int) -> tuple[int, int, int]:
        entry = self.get(int(value))
        return entry.colour if entry is not None else default_colour(int(value))

    def with_values(self, values: Iterable[int]) -> ClassTable:
        """Only the classes of ``values`` (in table order)."""
        keep = set(values)
        return ClassTable(tuple(c for c in self.classes if c.value in keep))

    # -- serialisations ----------------------------------------------------------
    def to_list(self) -> list[dict[str, Any]]:
        """``[{"value": 1, "name": "tumour", "color": "#e41a1c"}, ...]`` (JSON file form)."""
        return [{'value': c.value, 'name': c.name, 'color': c.hex} for c in self.classes]

    def to_json(self) -> str:
        """The staging unit's stored form (a JSON list, see :meth:`to_list`)."""
        return json.dumps(self.to_list(), ensure_ascii=True, separators=(',', ':'))

    @classmethod
    def from_json(cls, text: str) -> ClassTable:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidOptionError(f'class table is not valid JSON: {exc}') from None
        return _table_from_data(data, what='class table')

    def to_description_field(self) -> str:
        """``0:background:282828,1:tumour:e41a1c`` for the TIFF provenance line."""
        return ','.join(f'{c.value}:{_encode_name(c.name)}:{c.hex[1:]}' for c in self.classes)

    @classmethod
    def from_description_field(cls, text: str) -> ClassTable:
        entries = []
        for part in text.split(','):
            value, sep1, rest = part.partition(':')
            name, sep2, colour = rest.rpartition(':')
            if not (sep1 and sep2):
                raise InvalidOptionError(f'not a class table entry: {part!r}')
            entries.append(
                LabelClass(_parse_value(value), urllib.parse.unquote(name), _parse_colour(colour))
            )
        return cls(tuple(entries))

    def describe(self) -> str:
        """One line: ``0 background, 1 tumour (#e41a1c), ...``."""
        return ', '.join(f'{c.value} {c.name} ({c.hex})' for c in self.classes)


# -- parsing the user's forms ---------------------------------------------------------
def parse_classes(text: str | os.PathLike | None) -> ClassTable | None:
    """A :class:`ClassTable` from one of the forms of the module docstring
    (None and '' give None)."""
    if text is None:
        return None
    if isinstance(text, ClassTable):
        return text
    text = os.fspath(text).strip()
    if not text:
        return None
    if text.lower().endswith('.json'):
        return _read_json_file(text)
    entries = []
    parts = [part.strip() for part in text.split(',')]
    if any(not part for part in parts):
        raise InvalidOptionError(f'classes {text!r} has an empty entry (two commas in a row?)')
    named_only = not any('=' in part for part in parts)
    for index, part in enumerate(parts):
        if named_only:
            value_text, name_part = str(index), part
        else:
            value_text, sep, name_part = part.partition('=')
            if not sep:
                raise InvalidOptionError(
                    f'class entry {part!r} needs VALUE=NAME (give every entry a value, or none)'
                )
        name, colour = _split_colour(name_part.strip())
        value = _parse_value(value_text.strip())
        entries.append(LabelClass(value, name, colour if colour is not None else default_colour(value)))
    return ClassTable(tuple(entries))


def _split_colour(text: str) -> tuple[str, tuple[int, int, int] | None]:
    name, sep, colour = text.rpartition(':')
    if sep and _HEX.fullmatch(colour.strip()):
        return name.strip(), _parse_colour(colour.strip())
    if sep and colour.strip().startswith('#'):
        raise InvalidOptionError(f'class colour {colour.strip()!r} is not #rrggbb or #rgb')
    return text, None


def _read_json_file(path: str) -> ClassTable:
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InvalidOptionError(f'classes file {path} does not exist') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f'cannot read classes file {path}: {exc}') from None
    except ValueError as exc:
        raise InvalidOptionError(f'classes file {path} is not valid JSON: {exc}') from None
    return _table_from_data(data, what=f'classes file {path}')


def _table_from_data(data: Any, *, what: str) -> ClassTable:
    if isinstance(data, dict) and 'classes' in data and isinstance(data['classes'], (list, dict)):
        data = data['classes']
    items: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        for number, entry in enumerate(data):
            if not isinstance(entry, dict) or 'value' not in entry:
                raise InvalidOptionError(
                    f'{what}: entry {number} must be an object with "value" and "name"'
                )
            items.append((entry['value'], entry))
    else:
        raise InvalidOptionError(f'{what} must hold an object {{"VALUE": NAME, ...}} or a list')
    entries = []
    for key, entry in items:
        value = _parse_value(key)
        colour = None
        if isinstance(entry, str):
            name = entry
        elif isinstance(entry, dict) and isinstance(entry.get('name'), str):
            name = entry['name']
            given = entry.get('color', entry.get('colour'))
            if given is not None:
                colour = _parse_colour(given)
        else:
            raise InvalidOptionError(f'{what}: class {value} needs a name (text)')
        entries.append(LabelClass(value, name, colour if colour is not None else default_colour(value)))
    return ClassTable(tuple(entries))


def _parse_value(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidOptionError(f'class value must be an integer, got {value!r}')
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r'[0-9]+', text):
            raise InvalidOptionError(f'class value must be a non-negative integer, got {value!r}')
        number = int(text)
    if not 0 <= number <= MAX_VALUE:
        raise InvalidOptionError(f'class value must be 0 to {MAX_VALUE}, got {number}')
    return number


def _parse_colour(value: Any) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value
    ):
        return (int(value[0]), int(value[1]), int(value[2]))
    if isinstance(value, str) and _HEX.fullmatch(value.strip()):
        return _rgb(value.strip())
    raise InvalidOptionError(f'class colour must be #rrggbb, #rgb or [r, g, b], got {value!r}')


def _rgb(text: str) -> tuple[int, int, int]:
    digits = text.lstrip('#')
    if len(digits) == 3:
        digits = ''.join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _checked_class(entry: Any) -> LabelClass:
    if not isinstance(entry, LabelClass):
        raise InvalidOptionError(f'class table entries must be LabelClass, got {entry!r}')
    value = _parse_value(entry.value)
    if not isinstance(entry.name, str):
        raise InvalidOptionError(f'class {value}: name must be text, got {entry.name!r}')
    name = entry.name.strip()
    if not name:
        raise InvalidOptionError(f'class {value} has an empty name')
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidOptionError(f'class {value}: name longer than {MAX_NAME_LENGTH} characters')
    if not name.isprintable():
        raise InvalidOptionError(f'class {value}: name {name!r} holds control characters')
    return LabelClass(value, name, _parse_colour(tuple(entry.colour)))


def _encode_name(name: str) -> str:
    """Percent-encoded name that can never complete an ASAP-refused word."""
    encoded = urllib.parse.quote(name, safe=" !'()*+-./@[]^_{|}~")
    for word in _ASAP_WORDS:
        pattern = re.compile(re.escape(word), re.IGNORECASE)
        # Encoding the first letter of each occurrence breaks the word; the
        # escape itself ('%78', '%44') holds no letter of any of the words.
        encoded = pattern.sub(lambda m: f'%{ord(m.group(0)[0]):02X}' + m.group(0)[1:], encoded)
    return encoded


def classes_from_provenance(fields: dict[str, str] | None) -> ClassTable | None:
    """The class table in our parsed provenance fields
    (:func:`tifwriter_cli.tiff.metadata.parse_description`), or None."""
    text = (fields or {}).get('classes')
    if not text:
        return None
    return ClassTable.from_description_field(text)
