/// The checks of values that several measurements take, each in one place with one bound, so
/// that every command refuses the same input with the same words.
enum Check {
    /// The longest a timed phase may run: a day.
    static let longestDuration = 86_400.0

    /// A time in seconds: more than 0, at most `longestDuration`.
    static func duration(_ seconds: Double, _ setting: Setting = .duration) throws(MembenchError) {
        guard seconds > 0 && seconds <= longestDuration else {
            throw .invalid(setting, "must be more than 0 seconds and at most \(Int(longestDuration)), got \(seconds)")
        }
    }

    /// Rounds that take turns: 1 to 1000.
    static func rounds(_ rounds: Int) throws(MembenchError) {
        guard rounds >= 1 && rounds <= 1000 else { throw .invalid(.rounds, "must be between 1 and 1000, got \(rounds)") }
    }

    /// A size in bytes of at least `minimum`.
    static func size(_ bytes: Int, atLeast minimum: Int, _ setting: Setting = .size) throws(MembenchError) {
        guard bytes >= minimum else {
            throw .invalid(setting, "must be at least \(ByteSize.format(minimum)), got \(bytes > 0 ? ByteSize.format(bytes) : String(bytes))")
        }
    }
}
