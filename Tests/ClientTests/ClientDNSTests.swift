import Addresses
import DNS
import Testing

/// The DNS stub's reading of questions and writing of answers (glibc reads them in the end-to-end
/// tests; here each case, including what it must refuse).
@Suite struct ClientDNSTests {
    @Test func aQuestionIsReadAndAnsweredWithTheAddressesOfItsType() throws {
        let query = try DNSMessage.query(id: 0xBEEF, name: "Wiki.Corp.Test.", type: .a)
        let question = try #require(DNSQuestion(query))
        #expect(question.id == 0xBEEF && question.name == "wiki.corp.test" && question.type == 1 && question.recursionDesired)
        let proxies: [SocketAddress.IP] = [.v4(0x6460_0100), .v6(0xFD00_6761_7465_8000, 0x1_0000)]
        let answer = DNSMessage.answer(to: query, question: question, addresses: proxies, ttl: 60)
        let read = try DNSMessage.addresses(in: answer, id: 0xBEEF, name: "wiki.corp.test", type: .a)
        #expect(read == DNSAddresses(addresses: [.v4(0x6460_0100)], ttl: 60), "only the A record answers an A question")
        let query6 = try DNSMessage.query(id: 7, name: "wiki.corp.test", type: .aaaa)
        let answer6 = DNSMessage.answer(to: query6, question: try #require(DNSQuestion(query6)), addresses: proxies, ttl: 60)
        #expect(try DNSMessage.addresses(in: answer6, id: 7, name: "wiki.corp.test", type: .aaaa).addresses == [.v6(0xFD00_6761_7465_8000, 0x1_0000)])
        // Another type (MX 15) for a resource's name: no data, no error.
        var mx = query
        mx[mx.count - 3] = 15
        let noData = DNSMessage.answer(to: mx, question: try #require(DNSQuestion(mx)), addresses: proxies, ttl: 60)
        #expect(noData[3] & 0x0F == 0 && noData[6] == 0 && noData[7] == 0)
        let failure = DNSMessage.answer(to: query, question: question, addresses: [], ttl: 0, code: .serverFailure)
        #expect(failure[3] & 0x0F == 2)
    }

    @Test func whatIsNotAStandardQueryIsNotTaken() throws {
        let query = try DNSMessage.query(id: 1, name: "wiki.corp.test", type: .a)
        var response = query
        response[2] |= 0x80
        #expect(DNSQuestion(response) == nil, "a response")
        var update = query
        update[2] = 0x28  // opcode UPDATE
        #expect(DNSQuestion(update) == nil)
        var two = query
        two[5] = 2
        #expect(DNSQuestion(two) == nil, "two questions")
        #expect(DNSQuestion(Array(query.prefix(15))) == nil, "cut short")
        var chaos = query
        chaos[chaos.count - 1] = 3
        #expect(DNSQuestion(chaos) == nil, "class CH")
        #expect(DNSMessage.formatError(to: two)?[3] == 0x81)
        #expect(DNSMessage.formatError(to: [1, 2]) == nil)
    }
}
