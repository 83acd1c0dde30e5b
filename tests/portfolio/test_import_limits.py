"""The spreadsheet import reads hostile files within bounds: zip bombs, endless rows, huge cells."""

import csv
import io
import struct
import zipfile
from collections.abc import Iterable
from xml.sax.saxutils import escape

import pytest
from django.test import Client
from django.urls import reverse
from openpyxl import Workbook

from portfolio import forms
from portfolio.models import UseCase

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PACKAGE_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Use cases" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        '<Relationship Id="rId2" Target="sharedStrings.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
        "</Relationships>"
    ),
}


def row(number: int, *cells: str) -> str:
    """A sheet row of inline strings; a cell written ``#n`` refers to shared string n."""
    xml = []
    for column, value in zip("ABCDEFGHIJ", cells, strict=False):
        if value.startswith("#"):
            xml.append(f'<c r="{column}{number}" t="s"><v>{value[1:]}</v></c>')
        else:
            xml.append(f'<c r="{column}{number}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
    return f'<row r="{number}">{"".join(xml)}</row>'


def workbook(
    rows: Iterable[str],
    *,
    strings: Iterable[Iterable[bytes]] = (),
    dimension: str = "A1",
    sheet_end: str = "</sheetData></worksheet>",
    extra_parts: dict[str, str] | None = None,
    name: str = "cases.xlsx",
) -> io.BytesIO:
    """An .xlsx written part by part: its sheet's rows, and shared strings streamed in chunks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, xml in {**PACKAGE_PARTS, **(extra_parts or {})}.items():
            archive.writestr(part, xml)
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'<worksheet xmlns="{MAIN}"><dimension ref="{dimension}"/><sheetData>'.encode())
            for xml in rows:
                sheet.write(xml.encode())
            sheet.write(sheet_end.encode())
        with archive.open("xl/sharedStrings.xml", "w") as shared:
            shared.write(f'<sst xmlns="{MAIN}">'.encode())
            for chunks in strings:
                shared.write(b"<si><t>")
                for chunk in chunks:
                    shared.write(chunk)
                shared.write(b"</t></si>")
            shared.write(b"</sst>")
    buffer.seek(0)
    buffer.name = name
    return buffer


def header(*extra: str) -> str:
    return row(1, "team", "external_id", *extra)


def csv_file(rows: Iterable[list[str]], *, tail: bytes = b"", name: str = "cases.csv") -> io.BytesIO:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    buffer = io.BytesIO(text.getvalue().encode() + tail)
    buffer.name = name
    return buffer


def upload(user, file) -> object:
    client = Client()
    client.force_login(user)
    return client.post(reverse("portfolio:usecase-import"), {"file": file})


@pytest.fixture
def openpyxl_calls(monkeypatch):
    """Every opening of a workbook by openpyxl, recorded."""
    calls = []
    real = forms.load_workbook

    def recording(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(forms, "load_workbook", recording)
    return calls


def understating(content: bytes, part: str, size: int) -> bytes:
    """The archive with ``part`` declaring ``size`` unpacked bytes, in its local and central headers."""
    data = bytearray(content)
    struct.pack_into("<I", data, zipfile.ZipFile(io.BytesIO(content)).getinfo(part).header_offset + 22, size)
    position = data.find(b"PK\x01\x02")
    while position != -1:
        (length,) = struct.unpack_from("<H", data, position + 28)
        if data[position + 46 : position + 46 + length] == part.encode():
            struct.pack_into("<I", data, position + 24, size)
        position = data.find(b"PK\x01\x02", position + 4)
    return bytes(data)


# --- Zip bombs and oversized workbooks ---------------------------------------------------------------------


def test_a_workbook_unpacking_to_100_mib_is_refused_before_openpyxl_opens_it(member, team, openpyxl_calls):
    bomb = workbook([header("title"), row(2, "support", "x-1", "#0")], strings=[[b"a" * MiB] * 100])
    assert len(bomb.getvalue()) < 1 * MiB
    response = upload(member, bomb)
    assert response.status_code == 400
    assert "The workbook unpacks to more than 20 MB" in response.content.decode()
    assert openpyxl_calls == []
    assert not UseCase.objects.exists()


def test_the_unpacked_size_limit_is_a_setting(settings):
    content = workbook([header(), row(2, "support", "x-1")], strings=[[b"a" * 2000]]).getvalue()
    settings.IMPORT_MAX_UNPACKED_BYTES = 1000
    with pytest.raises(forms.ImportFileError, match="unpacks to more than 0 MB"):
        forms.read_table(content, filename="cases.xlsx")
    settings.IMPORT_MAX_UNPACKED_BYTES = MiB
    assert forms.read_table(content, filename="cases.xlsx") == [{"team": "support", "external_id": "x-1"}]


def test_a_part_larger_than_its_header_declares_is_not_unpacked_beyond_it():
    bomb = workbook([header("title"), row(2, "support", "x-1", "#0")], strings=[[b"a" * MiB] * 100]).getvalue()
    lying = understating(bomb, "xl/sharedStrings.xml", 1000)
    # Unpacked whole, the part would pass its checksum and open; cut at the declared size, it fails.
    with pytest.raises(forms.ImportFileError, match="not a readable Excel workbook"):
        forms.read_table(lying, filename="cases.xlsx")


def test_a_sheet_of_200000_rows_is_refused_before_openpyxl_opens_it(member, team, openpyxl_calls):
    rows = (row(number, "#0", "#1") for number in range(2, 200_002))
    big = workbook([header(), *rows], strings=[[b"support"], [b"x-1"]])
    assert len(big.getvalue()) < forms.MAX_IMPORT_BYTES
    response = upload(member, big)
    assert response.status_code == 400
    assert "The file has more than 10000 rows, counting empty ones; an import takes at most 1000." in (
        response.content.decode()
    )
    assert openpyxl_calls == []


def test_empty_rows_count_towards_the_rows_read(openpyxl_calls):
    content = workbook([header(), "<row/>" * 20_000, row(20_002, "support", "x-1")]).getvalue()
    with pytest.raises(forms.ImportFileError, match="more than 10000 rows, counting empty ones"):
        forms.read_table(content, filename="cases.xlsx")
    assert openpyxl_calls == []


def test_reading_stops_at_the_row_limit_without_reading_the_rest():
    # The sheet's end is not even XML: a reader that went past the limit would fail on it.
    content = workbook(
        [header(), *(row(number, "support", f"x-{number}") for number in range(2, 5_000))],
        sheet_end="<row><c><broken",
    ).getvalue()
    with pytest.raises(forms.ImportFileError, match="At most 1000 rows per file."):
        forms.read_table(content, filename="cases.xlsx")


def test_a_row_of_more_cells_than_a_sheet_has_columns_is_refused_before_openpyxl(openpyxl_calls):
    content = workbook([header(), "<row>" + "<c/>" * 16_385 + "</row>"]).getvalue()
    with pytest.raises(forms.ImportFileError, match="not a readable Excel workbook"):
        forms.read_table(content, filename="cases.xlsx")
    assert openpyxl_calls == []


def test_styles_of_tens_of_thousands_of_elements_are_refused_before_openpyxl(openpyxl_calls):
    styles = f'<styleSheet xmlns="{MAIN}"><cellXfs>' + '<xf numFmtId="0"/>' * 30_000 + "</cellXfs></styleSheet>"
    content = workbook([header(), row(2, "support", "x-1")], extra_parts={"xl/styles.xml": styles}).getvalue()
    with pytest.raises(forms.ImportFileError, match="holds more than an import reads"):
        forms.read_table(content, filename="cases.xlsx")
    assert openpyxl_calls == []


def test_a_workbook_of_too_much_markup_is_refused_before_openpyxl(openpyxl_calls):
    cells = "".join(f'<c r="{column}{{n}}"><v>1</v></c>' for column in "CDEFGHIJKLMNOP")
    rows = [header(), *(f'<row r="{n}">' + cells.format(n=n) + "</row>" for n in range(2, 9_000))]
    with pytest.raises(forms.ImportFileError, match="holds more than an import reads"):
        forms.read_table(workbook(rows).getvalue(), filename="cases.xlsx")
    assert openpyxl_calls == []


def test_a_workbook_of_too_many_parts_is_refused(openpyxl_calls):
    parts = {f"xl/media/image{number}.xml": "<x/>" for number in range(forms.MAX_WORKBOOK_PARTS)}
    content = workbook([header(), row(2, "support", "x-1")], extra_parts=parts).getvalue()
    with pytest.raises(forms.ImportFileError, match="holds more than an import reads"):
        forms.read_table(content, filename="cases.xlsx")
    assert openpyxl_calls == []


def test_an_export_sized_workbook_is_read():
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Use cases")
    sheet.append(forms.EXPORT_COLUMNS)
    for number in range(forms.MAX_IMPORT_ROWS):
        sheet.append(["support", f"x-{number}", "A description of the use case " * 3, *["12.50"] * 27])
    buffer = io.BytesIO()
    book.save(buffer)
    table = forms.read_table(buffer.getvalue(), filename="cases.xlsx")
    assert len(table) == forms.MAX_IMPORT_ROWS
    assert table[-1]["external_id"] == f"x-{forms.MAX_IMPORT_ROWS - 1}"


def test_columns_past_the_hundredth_are_not_read():
    # A cell in column XFD: openpyxl would give every row 16,384 values.
    content = workbook(
        [header(), row(2, "support", "x-1"), '<row r="3"><c r="XFD3" t="inlineStr"><is><t>far</t></is></c></row>'],
        dimension="A1:XFD3",
    ).getvalue()
    assert forms.read_table(content, filename="cases.xlsx") == [{"team": "support", "external_id": "x-1"}]


# --- Long cells and the preview ----------------------------------------------------------------------------


def test_a_cell_longer_than_the_limit_is_a_row_error_and_the_preview_stays_small(member, team):
    long = workbook(
        [header("title"), row(2, "support", "long-1", "#0"), row(3, "support", "fine-1", "Fine")],
        strings=[[b"y" * MiB] * 2],
    )
    response = upload(member, long)
    assert response.status_code == 200
    assert len(response.content) < MiB
    plan = response.context["plan"]
    assert plan.rows[0].errors == ["title: A cell may hold at most 10000 characters."]
    assert plan.rows[0].values["title"] == "y" * 199 + "…"
    assert response.context["confirm_form"] is None
    assert not UseCase.objects.exists()


def test_the_preview_shows_the_start_of_long_cells_and_of_errors_quoting_them(member, team):
    # Within the cell limit, but echoed whole three times a row (a team that is not a
    # choice is quoted in its error) the page would be over 5 MB.
    rows = [header("title"), *(row(number, "#0", f"x-{number}", "#1") for number in range(2, 202))]
    response = upload(member, workbook(rows, strings=[[b"t" * 9_000], [b"y" * 9_000]]))
    assert response.status_code == 200
    assert len(response.content) < MiB
    page = response.content.decode()
    assert "t" * 199 + "…" in page and "t" * 200 not in page
    assert "y" * 199 + "…" in page and "y" * 200 not in page
    assert all(any(error.startswith("team: ") for error in row.errors) for row in response.context["plan"].rows)


def test_the_cell_limit_is_a_setting(settings, member):
    settings.IMPORT_MAX_CELL_CHARS = 8
    table = forms.read_table(b"team,external_id,title\nsupport,x-1,Far too long\n", filename="cases.csv")
    plan = forms.parse_import(table, user=member)
    assert plan.rows[0].errors == ["title: A cell may hold at most 8 characters."]


# --- CSV ---------------------------------------------------------------------------------------------------


def test_a_long_csv_cell_is_a_row_error(member, team):
    response = upload(member, csv_file([["team", "external_id", "title"], ["support", "long-1", "z" * 20_000]]))
    assert response.status_code == 200
    assert response.context["plan"].rows[0].errors == ["title: A cell may hold at most 10000 characters."]
    assert "z" * 200 not in response.content.decode()


def test_a_csv_of_200000_rows_is_refused_at_the_row_limit_without_reading_the_rest(member, team):
    rows = [["team", "external_id"], *(["support", f"x-{number}"] for number in range(200_000))]
    # Bytes that are not UTF-8 at the end: a reader that went past the limit would fail on them.
    response = upload(member, csv_file(rows, tail=b"\xff\xfe"))
    assert response.status_code == 400
    assert "At most 1000 rows per file." in response.content.decode()


def test_empty_csv_lines_count_towards_the_rows_read():
    content = b"team,external_id\n" + b"\n" * 20_000 + b"support,x-1\n"
    with pytest.raises(forms.ImportFileError, match="more than 10000 rows, counting empty ones"):
        forms.read_table(content, filename="cases.csv")


def test_a_csv_cell_past_the_csv_modules_own_limit_is_a_form_error(member, team):
    file = io.BytesIO(b"team,external_id,title\nsupport,x-1," + b"w" * 200_000 + b"\n")
    file.name = "cases.csv"
    response = upload(member, file)
    assert response.status_code == 400
    assert "Line 2 of the CSV file cannot be read: a cell is longer than 131072 characters." in (
        response.content.decode()
    )


def test_workbooks_are_parsed_with_defusedxml():
    # openpyxl guards against entity expansion and external entities only with defusedxml
    # installed, which requirements.txt pins for that reason.
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML
