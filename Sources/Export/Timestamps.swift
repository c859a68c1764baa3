import JSON

/// ISO 8601 timestamps as the export carries them, normalised to UTC with a `Z`.
///
/// Accepted: `YYYY-MM-DD` `T` (or a space, as Redshift writes) `HH:MM:SS`, an optional fraction
/// (`.` or `,` and digits, kept as given), then a zone: `Z`, or an offset `+HH:MM`, `+HHMM`,
/// `+HH` (either sign). A `...Z` value already in that form is returned unchanged; an offset is
/// converted to UTC. No zone, or anything else, is nil: a time that claims nothing about its
/// zone cannot be placed.
enum Timestamps {
    static func normalised(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let n = bytes.count
        guard n >= 20 else { return nil }
        func digit(_ i: Int) -> Int? {
            let d = Int(bytes[i]) &- 48
            return d >= 0 && d <= 9 ? d : nil
        }
        func number(_ i: Int, _ count: Int) -> Int? {
            var value = 0
            for k in i..<(i + count) {
                guard let d = digit(k) else { return nil }
                value = value * 10 + d
            }
            return value
        }
        guard let year = number(0, 4), bytes[4] == UInt8(ascii: "-"), let month = number(5, 2),
            bytes[7] == UInt8(ascii: "-"), let day = number(8, 2)
        else { return nil }
        let separator = bytes[10]
        guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: " ") || separator == UInt8(ascii: "t")
        else { return nil }
        guard let hour = number(11, 2), bytes[13] == UInt8(ascii: ":"), let minute = number(14, 2),
            bytes[16] == UInt8(ascii: ":"), let second = number(17, 2)
        else { return nil }
        guard year >= 1, (1...12).contains(month), day >= 1, day <= CivilCalendar.daysIn(month: month, year: year), hour <= 23,
            minute <= 59, second <= 59
        else { return nil }
        var i = 19
        var fractionStart = i
        var fractionEnd = i
        if bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: ",") {
            i += 1
            fractionStart = i
            while i < n, digit(i) != nil { i += 1 }
            fractionEnd = i
            guard fractionEnd > fractionStart else { return nil }
        }
        guard i < n else { return nil }
        var offsetMinutes = 0
        let zone = bytes[i]
        let isZulu = zone == UInt8(ascii: "Z") || zone == UInt8(ascii: "z")
        if isZulu {
            guard i + 1 == n else { return nil }
        } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-") {
            let rest = n - i - 1
            guard rest == 2 || rest == 4 || rest == 5, let hours = number(i + 1, 2) else { return nil }
            var minutes = 0
            if rest == 4 {
                guard let m = number(i + 3, 2) else { return nil }
                minutes = m
            } else if rest == 5 {
                guard bytes[i + 3] == UInt8(ascii: ":"), let m = number(i + 4, 2) else { return nil }
                minutes = m
            }
            guard hours <= 23, minutes <= 59 else { return nil }
            offsetMinutes = (hours * 60 + minutes) * (zone == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        // Already canonical: keep the caller's text as it is.
        if isZulu && zone == UInt8(ascii: "Z") && separator == UInt8(ascii: "T")
            && (fractionEnd == fractionStart || bytes[19] == UInt8(ascii: "."))
        {
            return String(decoding: bytes, as: UTF8.self)
        }
        var days = CivilCalendar.daysFromCivil(year: year, month: month, day: day)
        var minuteOfDay = hour * 60 + minute - offsetMinutes
        if minuteOfDay < 0 {
            minuteOfDay += 1440
            days -= 1
        } else if minuteOfDay >= 1440 {
            minuteOfDay -= 1440
            days += 1
        }
        let (y, m, d) = CivilCalendar.civilFromDays(days)
        guard (1...9999).contains(y) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(21 + fractionEnd - fractionStart)
        func put(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(48 + v / divisor))
                v %= divisor
                divisor /= 10
            }
        }
        put(y, 4)
        out.append(UInt8(ascii: "-"))
        put(m, 2)
        out.append(UInt8(ascii: "-"))
        put(d, 2)
        out.append(UInt8(ascii: "T"))
        put(minuteOfDay / 60, 2)
        out.append(UInt8(ascii: ":"))
        put(minuteOfDay % 60, 2)
        out.append(UInt8(ascii: ":"))
        put(second, 2)
        if fractionEnd > fractionStart {
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[fractionStart..<fractionEnd]))
        }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }
}
