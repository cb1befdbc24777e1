import AdminAPI
import Foundation
import Portal
import Testing

/// Filters and conditions are stored as JSON lists and read back by hand on the list path; what it
/// reads must be what a JSONDecoder reads, for the stored form and for anything else.
@Suite struct StoredListTests {
    @Test func storedListsReadAsJSONDecoderReadsThem() throws {
        let texts = [
            "[]", #"["tcp:443"]"#, #"["tcp:443","icmp"]"#, #"[""]"#, #"["a",""]"#, #"["",""]"#, #"["a", "b"]"#, #"[ "a"]"#,
            #"["a\"b"]"#, #"["a\\b","c"]"#, #"["ü☃","x"]"#, #"["a","b""]"#, "not json", "[1]", #"["a",]"#, "",
        ]
        var random = SystemRandomNumberGenerator()
        var generated = texts
        let pieces = ["tcp:5432", "udp:53-54", "icmp", ",", "\"", "\\", " ", "é", ""]
        for _ in 0..<500 {
            let items = (0..<Int(random.next() % 4)).map { _ in (0..<Int(random.next() % 3)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined() }
            generated.append(String(decoding: try JSONEncoder().encode(items), as: UTF8.self))
        }
        for text in generated {
            let expected = (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
            #expect(Resource.list(text) == expected, "\(text)")
        }
    }
}
