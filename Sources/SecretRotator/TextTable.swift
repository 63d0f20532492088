/// Left-aligned columns for the CLI's human output (`check-config`, `status`); the last
/// column is not padded, so lines carry no trailing blanks.
public struct TextTable {
    let header: [String]
    let rows: [[String]]

    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    public func renderLines() -> [String] {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { cells in
            zip(cells, widths).enumerated().map { index, pair in
                let (cell, width) = pair
                if index == cells.count - 1 || cell.count >= width { return cell }
                return cell + String(repeating: " ", count: width - cell.count)
            }.joined(separator: "  ")
        }
    }
}
