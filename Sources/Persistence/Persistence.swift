// GRDB records, migrations and repositories. Filled in by the portal issue.

package enum Persistence {}
