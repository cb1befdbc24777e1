package import Addresses
package import Foundation

/// A condition of a policy (portal spec, "policy"): all of a policy's conditions must hold for it to
/// grant access. The text form is what the admin API and `gatehouse admin policy create --condition`
/// take and what is stored:
///
/// - `source_in:10.0.0.0/8,2001:db8::/32`: the client's source address is in one of the networks;
/// - `source_not_in:203.0.113.0/24`: it is in none of them;
/// - `time:MTWRF/09:00-17:00/Europe/Berlin` (one or more windows separated by `,`; the `time:` prefix
///   may be left out): the current time is inside a window. Days are `M T W R F S U` (Monday to
///   Sunday); `24:00` ends a window at midnight; a window whose end is before its start runs past
///   midnight into the next day. A window also bounds how long the resulting authorisation lasts;
/// - `verified`: the client was verified by an admin.
package enum Condition: Hashable, Sendable, CustomStringConvertible {
    case sourceIn([AddressRange])
    case sourceNotIn([AddressRange])
    case timeWindows([TimeWindow])
    case verifiedClient

    package init(_ text: String) throws(ConditionError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "verified" {
            self = .verifiedClient
            return
        }
        let parts = trimmed.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        switch parts[0] {
        case "source_in", "source_not_in":
            guard parts.count == 2, !parts[1].isEmpty else { throw .invalid(text, "list one or more networks, like \(parts[0]):10.0.0.0/8") }
            var ranges: [AddressRange] = []
            for item in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
                let network = item.trimmingCharacters(in: .whitespaces)
                do {
                    ranges.append(try AddressRange(network))
                } catch {
                    throw .invalid(text, "\"\(network)\" is not a network: \(error)")
                }
            }
            self = parts[0] == "source_in" ? .sourceIn(ranges) : .sourceNotIn(ranges)
        case "time":
            guard parts.count == 2 else { throw .invalid(text, "give one or more windows, like time:MTWRF/09:00-17:00/Europe/Berlin") }
            self = .timeWindows(try Self.windows(parts[1], text: text))
        default:
            // The spec writes a time window on its own: `M/09:00-17:00/Europe/Berlin`.
            guard trimmed.contains("/") else {
                throw .invalid(text, "a condition is source_in:CIDRS, source_not_in:CIDRS, time:DAYS/HH:MM-HH:MM/ZONE or verified")
            }
            self = .timeWindows(try Self.windows(trimmed, text: text))
        }
    }

    private static func windows(_ list: String, text: String) throws(ConditionError) -> [TimeWindow] {
        var windows: [TimeWindow] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            windows.append(try TimeWindow(item.trimmingCharacters(in: .whitespaces), condition: text))
        }
        return windows
    }

    package var description: String {
        switch self {
        case let .sourceIn(ranges): "source_in:" + ranges.map(\.description).joined(separator: ",")
        case let .sourceNotIn(ranges): "source_not_in:" + ranges.map(\.description).joined(separator: ",")
        case let .timeWindows(windows): "time:" + windows.map(\.description).joined(separator: ",")
        case .verifiedClient: "verified"
        }
    }

    /// Whether the condition holds for a client, and until when it keeps holding (nil: no bound).
    /// The first instant after `now` at which this condition's outcome may change by time alone: the
    /// start or end of a time window; nil for conditions that time does not change.
    package func nextChange(after now: Date) -> Date? {
        switch self {
        case let .timeWindows(windows): TimeWindow.nextBoundary(windows, after: now)
        case .sourceIn, .sourceNotIn, .verifiedClient: nil
        }
    }

    package func evaluate(_ context: ConditionContext) -> (holds: Bool, until: Date?) {
        switch self {
        case let .sourceIn(ranges):
            guard let source = context.sourceAddress else { return (false, nil) }
            return (ranges.contains { $0.contains(source) }, nil)
        case let .sourceNotIn(ranges):
            guard let source = context.sourceAddress else { return (false, nil) }
            return (!ranges.contains { $0.contains(source) }, nil)
        case .verifiedClient:
            return (context.clientVerified == true, nil)
        case let .timeWindows(windows):
            return TimeWindow.evaluate(windows, at: context.now)
        }
    }
}

/// What conditions are evaluated against. Unknown facts (no client, so no source address or verified
/// flag) make the conditions that need them fail: access is never granted on a guess.
package struct ConditionContext: Sendable {
    package var sourceAddress: SocketAddress.IP?
    package var clientVerified: Bool?
    package var now: Date

    package init(sourceAddress: SocketAddress.IP? = nil, clientVerified: Bool? = nil, now: Date) {
        self.sourceAddress = sourceAddress
        self.clientVerified = clientVerified
        self.now = now
    }
}

package enum ConditionError: Error, Equatable, CustomStringConvertible {
    /// The condition text and what is wrong with it.
    case invalid(String, String)

    package var description: String {
        switch self {
        case let .invalid(text, reason): "condition \"\(text)\": \(reason)"
        }
    }
}

/// Days of the week and a time of day in an IANA time zone: `MTWRF/09:00-17:00/Europe/Berlin`.
package struct TimeWindow: Hashable, Sendable, CustomStringConvertible {
    /// ISO weekdays, 1 (Monday) to 7 (Sunday).
    package var days: Set<Int>
    /// Minutes after local midnight: start in 0..<1440, end in 0...1440; an end at or before the start
    /// means the window runs into the next day.
    package var start: Int
    package var end: Int
    /// The IANA name as the admin wrote it (Foundation reports "UTC" as "GMT").
    package var zoneName: String
    package var timeZone: TimeZone

    private static let letters: [Character] = ["M", "T", "W", "R", "F", "S", "U"]

    init(_ text: String, condition: String) throws(ConditionError) {
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { throw .invalid(condition, "a time window is DAYS/HH:MM-HH:MM/ZONE, like MTWRF/09:00-17:00/Europe/Berlin") }
        var days = Set<Int>()
        for letter in parts[0].uppercased() {
            guard let index = Self.letters.firstIndex(of: letter) else {
                throw .invalid(condition, "days are letters among M T W R F S U (Monday to Sunday), not \"\(parts[0])\"")
            }
            days.insert(index + 1)
        }
        guard !days.isEmpty else { throw .invalid(condition, "a time window needs at least one day") }
        let bounds = parts[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard bounds.count == 2, let start = Self.minutes(bounds[0]), let end = Self.minutes(bounds[1]), start < 1440 else {
            throw .invalid(condition, "the time range \"\(parts[1])\" must be HH:MM-HH:MM (00:00 to 24:00)")
        }
        guard start != end else { throw .invalid(condition, "the time range \"\(parts[1])\" is empty") }
        guard let zone = TimeZone(identifier: parts[2]), !parts[2].isEmpty else {
            throw .invalid(condition, "\"\(parts[2])\" is not an IANA time zone (like Europe/Berlin or UTC)")
        }
        self.days = days
        self.start = start
        self.end = end
        self.timeZone = zone
        self.zoneName = parts[2]
    }

    private static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]),
              (0...24).contains(hours), (0...59).contains(minutes), hours < 24 || minutes == 0
        else { return nil }
        return hours * 60 + minutes
    }

    package var description: String {
        let letters = days.sorted().map { String(Self.letters[$0 - 1]) }.joined()
        func clock(_ minutes: Int) -> String {
            let hours = minutes / 60
            let rest = minutes % 60
            return (hours < 10 ? "0" : "") + "\(hours):" + (rest < 10 ? "0" : "") + "\(rest)"
        }
        return "\(letters)/\(clock(start))-\(clock(end))/\(zoneName)"
    }

    /// The concrete intervals of this window that start on the local days from `from` to `through`.
    private func intervals(around now: Date, daysBefore: Int, daysAfter: Int) -> [Range<Date>] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let today = calendar.startOfDay(for: now)
        var result: [Range<Date>] = []
        for offset in -daysBefore...daysAfter {
            guard let day = calendar.date(byAdding: .day, value: offset, to: today) else { continue }
            // Calendar weekday: 1 = Sunday ... 7 = Saturday; ISO: 1 = Monday ... 7 = Sunday.
            let weekday = (calendar.component(.weekday, from: day) + 5) % 7 + 1
            guard days.contains(weekday) else { continue }
            let components = calendar.dateComponents([.year, .month, .day], from: day)
            func at(_ minutes: Int, nextDay: Bool) -> Date? {
                var moment = components
                moment.day = (moment.day ?? 1) + (nextDay ? 1 : 0) + minutes / 1440
                moment.hour = (minutes % 1440) / 60
                moment.minute = minutes % 60
                return calendar.date(from: moment)
            }
            guard let startDate = at(start, nextDay: false), let endDate = at(end, nextDay: end <= start), startDate < endDate else { continue }
            result.append(startDate..<endDate)
        }
        return result
    }

    /// The first instant after `now` at which one of `windows` starts or ends (so the condition's
    /// outcome may change), looking a week ahead; nil when there is none in that week.
    package static func nextBoundary(_ windows: [TimeWindow], after now: Date) -> Date? {
        windows.flatMap { $0.intervals(around: now, daysBefore: 1, daysAfter: 8) }
            .flatMap { [$0.lowerBound, $0.upperBound] }
            .filter { $0 > now }
            .min()
    }

    /// Whether `now` is inside one of `windows`, and the end of the uninterrupted stretch of windows
    /// it is in (nil when the windows cover the whole week: no bound).
    package static func evaluate(_ windows: [TimeWindow], at now: Date) -> (holds: Bool, until: Date?) {
        let horizon = 8
        let intervals = windows.flatMap { $0.intervals(around: now, daysBefore: 1, daysAfter: horizon) }
        guard var end = intervals.filter({ $0.contains(now) }).map(\.upperBound).max() else { return (false, nil) }
        // Follow windows that start before the current one ends (Monday 00:00-24:00 then Tuesday ...).
        var extended = true
        while extended {
            extended = false
            for interval in intervals where interval.lowerBound <= end && interval.upperBound > end {
                end = interval.upperBound
                extended = true
            }
        }
        // A stretch that reaches the end of what was computed does not end within a week: unbounded.
        if end.timeIntervalSince(now) > Double(horizon - 1) * 86_400 { return (true, nil) }
        return (true, end)
    }
}
