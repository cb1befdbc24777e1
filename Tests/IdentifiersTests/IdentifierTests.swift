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
        let ids = (0..<50).map { _ in PolicyID() }
        #expect(ids.sorted().map(\.description) == ids.map(\.description).sorted())
    }
}
