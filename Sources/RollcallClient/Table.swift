import RollcallCore

/// Plain aligned text for people: the tables of `rollcall agents list`, `status` and `history`,
/// and the fields of `rollcall agents show`.
///
/// What it prints comes from agents (hostnames, labels, status) by way of the server, so every
/// cell is shown as ``TerminalText/escaped(_:)`` writes it, and columns are as wide as the escaped
/// text: a control character neither reaches the operator's terminal nor shifts the columns after
/// it.
public enum Table {
    /// A header line and one line per row, columns two spaces apart; the last column is not padded.
    public static func render(header: [String], rows: [[String]]) -> String {
        let lines = ([header] + rows).map { $0.map(TerminalText.escaped) }
        var widths = header.map { _ in 0 }
        for cells in lines {
            for (i, cell) in cells.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return lines.map { cells in
            cells.enumerated().map { i, cell in
                i == cells.count - 1 || i >= widths.count ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }
            .joined(separator: "  ")
        }
        .joined(separator: "\n")
    }

    /// One `key  value` line per member of a JSON object: strings as they are, `-` for null,
    /// anything else (labels, status, metadata) as JSON. Empty when `object` is not an object.
    public static func fields(_ object: JSONValue) -> String {
        guard case .object(let members) = object else { return "" }
        return members.map { key, value in
            let name = TerminalText.escaped(key)
            let text: String
            switch value {
            case .string(let s): text = TerminalText.escaped(s)
            case .null: text = "-"
            default: text = terminalJSON(value)
            }
            return name + String(repeating: " ", count: max(1, 14 - name.count)) + text
        }
        .joined(separator: "\n")
    }

    /// `value` as JSON that is also safe on a terminal, and still valid JSON.
    ///
    /// The serializer already writes C0 controls, quotes and backslashes as escapes; JSON allows
    /// DEL, the C1 controls and the bidi controls raw, so those are written here as `\uXXXX`.
    /// They can only stand inside strings (outside them JSON text is ASCII punctuation, digits and
    /// keywords), and all lie in the Basic Multilingual Plane: four hex digits always suffice.
    static func terminalJSON(_ value: JSONValue) -> String {
        let json = value.serialized()
        func needsEscape(_ scalar: Unicode.Scalar) -> Bool { scalar != "\\" && TerminalText.needsEscape(scalar) }
        guard json.unicodeScalars.contains(where: needsEscape) else { return json }
        var out = String()
        out.reserveCapacity(json.utf8.count + 8)
        for scalar in json.unicodeScalars {
            if needsEscape(scalar) {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
