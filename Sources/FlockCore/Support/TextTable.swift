/// A plain-text table with right-aligned columns separated by two spaces, for command summaries.
public struct TextTable: Sendable {
    /// Column titles.
    public var header: [String]
    /// Cells, one array per row, as many as `header`.
    public var rows: [[String]]

    /// Creates a table.
    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    /// The table, one line per row after the header, without a trailing newline.
    public func render() -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (j, cell) in row.enumerated() where j < widths.count { widths[j] = max(widths[j], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { j, cell in
                String(repeating: " ", count: max(0, widths[j] - cell.count)) + cell
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
