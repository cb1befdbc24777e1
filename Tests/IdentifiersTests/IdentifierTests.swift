import Foundation
import Identifiers
import Testing

@Suite struct IdentifierTests {
    @Test func textFormIsLowerCaseAndParsesEitherCase() throws {
        let id = try #require(SiteID("5F0C2B8E-1D3A-4B7C-9E21-0A1B2C3D4E5F"))
        #expect(id.description == "5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5f")
        #expect(SiteID(id.description) == id)
        #expect(SiteID("not-a-uuid") == nil)
        #expect(SiteID("") == nil)
        #expect(SiteID.noun == "site")
    }

    @Test func encodesAsItsTextAndRefusesOtherJSON() throws {
        let id = GroupID()
        let data = try JSONEncoder().encode(["group_id": id])
        #expect(String(decoding: data, as: UTF8.self) == #"{"group_id":"\#(id.description)"}"#)
        #expect(try JSONDecoder().decode([String: GroupID].self, from: data)["group_id"] == id)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([String: GroupID].self, from: Data(#"{"group_id":"x"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([String: GroupID].self, from: Data(#"{"group_id":7}"#.utf8)) }
    }

    @Test func orderIsTheOrderOfTheText() {
        // Random IDs, and IDs alike in their first eight bytes (so that the second half decides), or in
        // all but one byte.
        var ids = (0..<50).map { _ in PolicyID() }
        for _ in 0..<50 {
            var bytes = UUID().uuid
            bytes.0 = 0x12; bytes.1 = 0x34; bytes.2 = 0x56; bytes.3 = 0x78; bytes.4 = 0x9A; bytes.5 = 0xBC; bytes.6 = 0x40; bytes.7 = 0xDE
            ids.append(PolicyID(UUID(uuid: bytes)))
            bytes.15 = UInt8.random(in: 0...255)
            ids.append(PolicyID(UUID(uuid: bytes)))
        }
        #expect(ids.sorted().map(\.description) == ids.map(\.description).sorted())
    }

    /// The text form is written and read here, not by Foundation: it must agree with Foundation's for
    /// every UUID, and refuse what Foundation refuses.
    @Test func textFormAgreesWithFoundation() {
        for _ in 0..<2000 {
            let uuid = UUID()
            #expect(ResourceID(uuid).description == uuid.uuidString.lowercased())
            #expect(ResourceID(uuid.uuidString)?.uuid == uuid)
            #expect(ResourceID(uuid.uuidString.lowercased())?.uuid == uuid)
        }
        let edge = UUID(uuid: (0, 0xFF, 0x0F, 0xF0, 0x10, 0x9A, 0xAB, 0xBC, 0xCD, 0xDE, 0xEF, 0xFE, 0x01, 0x23, 0x45, 0x67))
        #expect(SiteID(edge).description == edge.uuidString.lowercased())
        for bad in ["5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5", "5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5f0", "5f0c2b8e1d3a-4b7c-9e21-0a1b2c3d4e5f0",
                    "5f0c2b8e-1d3a-4b7c-9e21+0a1b2c3d4e5f", "5g0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5f", "{5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5}",
                    "5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4é5f", " 5f0c2b8e-1d3a-4b7c-9e21-0a1b2c3d4e5f"] {
            #expect(SiteID(bad) == nil, "\(bad)")
            #expect(UUID(uuidString: bad) == nil, "Foundation refuses \(bad) too")
        }
    }
}
