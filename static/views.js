// The page's views, each in its own module; each renders into `main` from the public API only.
export { tenantsView } from "./tenants.js";
export { tenantView } from "./tenant.js";
export { usageView } from "./usage.js";
export { gatewayView } from "./gateway.js";
export { webhooksView } from "./webhooks.js";
export { billingView } from "./billing.js";
export { jobsView } from "./jobs.js";
export { instanceView, pricingView } from "./instance.js";
export { serviceView } from "./service.js";
export { setRouter } from "./ui.js";
