// Resources, filters, conditions and the evaluation that turns policies into authorisations.
// Shared by portal, gateway and client. Filled in by the portal issue.

package enum Policy {}
