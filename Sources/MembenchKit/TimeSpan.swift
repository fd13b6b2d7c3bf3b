import Foundation

/// Durations as people write them: `2`, `0.5`, `2s`, `500ms`, `250us`, `1m`.
///
/// A bare number is seconds. The value must be finite and not negative; whether 0 is allowed
/// is the caller's choice.
public enum TimeSpan {
    /// The duration in seconds, or nil when the text is not a duration.
    public static func parse(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let number = trimmed.prefix { ($0.isASCII && $0.isNumber) || $0 == "." }
        guard !number.isEmpty, number.contains(where: \.isNumber), let value = Double(number), value.isFinite else { return nil }
        let scale: Double
        switch trimmed.dropFirst(number.count).lowercased() {
        case "", "s", "sec": scale = 1
        case "ms": scale = 1e-3
        case "us", "µs": scale = 1e-6
        case "ns": scale = 1e-9
        case "m", "min": scale = 60
        case "h": scale = 3600
        default: return nil
        }
        return value * scale
    }

    /// Seconds in the shortest unit that reads well: `2s`, `0.25s`, `500ms`, `250us`, `1ns`.
    public static func format(_ seconds: Double) -> String {
        if seconds > 0 && seconds < 1e-6 { return String(format: "%gns", seconds * 1e9) }
        if seconds > 0 && seconds < 1e-3 { return String(format: "%gus", seconds * 1e6) }
        if seconds > 0 && seconds < 0.1 { return String(format: "%gms", seconds * 1e3) }
        return String(format: "%gs", seconds)
    }
}
