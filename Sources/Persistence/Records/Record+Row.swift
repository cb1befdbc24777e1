package import GRDB
import Identifiers

// Rows read column by column for the tables read most (list pages of resources and policies, and the
// evaluator's read of a whole account): GRDB decodes a Codable record through a keyed container per
// row, which a profile put at a quarter of a list read's time. Each initialiser names every column of
// its table; `RecordRowTests` checks that it reads what the Codable path reads.

extension ResourceRecord {
    package init(row: Row) throws {
        self.init(id: try row.decode(forColumn: CodingKeys.id.rawValue), accountID: try row.decode(forColumn: CodingKeys.accountID.rawValue),
                  siteID: try row.decode(forColumn: CodingKeys.siteID.rawValue), name: try row.decode(forColumn: CodingKeys.name.rawValue),
                  type: try row.decode(forColumn: CodingKeys.type.rawValue), address: try row.decode(forColumn: CodingKeys.address.rawValue),
                  addressDescription: try row.decode(forColumn: CodingKeys.addressDescription.rawValue),
                  filters: try row.decode(forColumn: CodingKeys.filters.rawValue), ipStack: try row.decode(forColumn: CodingKeys.ipStack.rawValue),
                  createdAt: try row.decode(forColumn: CodingKeys.createdAt.rawValue))
    }
}

extension ResourceRecord.Kind: DatabaseValueConvertible {}

extension PolicyRecord {
    package init(row: Row) throws {
        self.init(id: try row.decode(forColumn: CodingKeys.id.rawValue), accountID: try row.decode(forColumn: CodingKeys.accountID.rawValue),
                  groupID: try row.decode(forColumn: CodingKeys.groupID.rawValue), resourceID: try row.decode(forColumn: CodingKeys.resourceID.rawValue),
                  description: try row.decode(forColumn: CodingKeys.description.rawValue),
                  conditions: try row.decode(forColumn: CodingKeys.conditions.rawValue), disabled: try row.decode(forColumn: CodingKeys.disabled.rawValue),
                  createdAt: try row.decode(forColumn: CodingKeys.createdAt.rawValue))
    }
}

extension MembershipRecord {
    package init(row: Row) throws {
        self.init(accountID: try row.decode(forColumn: CodingKeys.accountID.rawValue), actorID: try row.decode(forColumn: CodingKeys.actorID.rawValue),
                  groupID: try row.decode(forColumn: CodingKeys.groupID.rawValue))
    }
}
