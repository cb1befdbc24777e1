import Policy
import Testing

@Suite struct FilterTests {
    @Test(arguments: [("tcp:5432", "tcp:5432"), ("UDP:8000-8100", "udp:8000-8100"), ("tcp", "tcp"), ("icmp", "icmp"), ("tcp:1-65535", "tcp")])
    func parsesAndPrintsCanonically(text: String, canonical: String) throws {
        #expect(try Filter(text).description == canonical)
    }

    @Test(arguments: [
        ("tcp:0", "port 0 is not a port"), ("tcp:70000", "each 1-65535"), ("udp:9-3", "reversed"),
        ("sctp:80", "tcp, udp or icmp"), ("icmp:8", "icmp takes no ports"), ("tcp:", "ports must be"), ("tcp:1-2-3", "ports must be"),
    ])
    func badFiltersSayWhy(text: String, reason: String) {
        #expect {
            _ = try Filter(text)
        } throws: { error in
            "\(error)".contains(reason) && "\(error)".contains("filter \"\(text)\"")
        }
    }

    @Test func matching() throws {
        let filters = try ["tcp:5432", "udp:53", "icmp"].map(Filter.init)
        #expect(filters.allows(protocolNumber: 6, port: 5432))
        #expect(!filters.allows(protocolNumber: 6, port: 5433))
        #expect(!filters.allows(protocolNumber: 17, port: 5432))
        #expect(filters.allows(protocolNumber: 17, port: 53))
        #expect(filters.allows(protocolNumber: 58, port: 0), "ICMPv6 too")
        #expect([Filter]().allows(protocolNumber: 6, port: 1), "no filters: all traffic")
    }
}
