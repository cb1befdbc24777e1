// The kinds of things the portal names by ID. Each is a distinct type: swapping one for another does
// not compile.

package enum AccountNoun: IdentifiedNoun { package static let noun = "account" }
package enum ActorNoun: IdentifiedNoun { package static let noun = "actor" }
package enum GroupNoun: IdentifiedNoun { package static let noun = "group" }
package enum SiteNoun: IdentifiedNoun { package static let noun = "site" }
package enum ResourceNoun: IdentifiedNoun { package static let noun = "resource" }
package enum PolicyNoun: IdentifiedNoun { package static let noun = "policy" }
package enum TokenNoun: IdentifiedNoun { package static let noun = "token" }
/// A client or a gateway: both are devices, told apart by their kind.
package enum DeviceNoun: IdentifiedNoun { package static let noun = "device" }
package enum AuthorizationNoun: IdentifiedNoun { package static let noun = "authorization" }
package enum AuditEventNoun: IdentifiedNoun { package static let noun = "audit event" }
package enum RelayNoun: IdentifiedNoun { package static let noun = "relay" }

package typealias AccountID = Identifier<AccountNoun>
package typealias ActorID = Identifier<ActorNoun>
package typealias GroupID = Identifier<GroupNoun>
package typealias SiteID = Identifier<SiteNoun>
package typealias ResourceID = Identifier<ResourceNoun>
package typealias PolicyID = Identifier<PolicyNoun>
package typealias TokenID = Identifier<TokenNoun>
package typealias DeviceID = Identifier<DeviceNoun>
package typealias AuthorizationID = Identifier<AuthorizationNoun>
package typealias AuditEventID = Identifier<AuditEventNoun>
package typealias RelayID = Identifier<RelayNoun>
