#pragma once
// Flagger's CallWebhook: POST the CanaryWebhookPayload {"name","namespace","phase","checksum",
// "metadata"} as JSON to a hook's URL, within the hook's timeout (10 s default), with up
// to `retries` more attempts on transport errors, 429 and 5xx answers but 501, backing off from
// 1 s (go-retryablehttp's policy, which Flagger uses). Success is a status up to 202,
// as Flagger counts it; anything else is a failure whose error is the response body (or the
// transport error).
//
// Thread affinity: the io_context thread of `ex`. Errors: in the outcome, never thrown.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/canary.hpp"
#include "core/rollout.hpp"

namespace canaryd {

boost::asio::awaitable<core::webhook_outcome> call_webhook(boost::asio::any_io_executor ex, const core::canary& c,
                                                           const core::canary_webhook& hook,
                                                           core::canary_phase phase);

// Flagger's event webhooks: POSTs `e` to every `type: event` webhook of the canary, or when it has
// none to `global_url` (-event-webhook / EVENT_WEBHOOK_URL; "" = none). The payload's metadata
// holds the hook's metadata plus eventMessage, eventType (Normal/Warning) and timestamp (Unix
// milliseconds as a string), which win over same-named keys; phase is the canary's status phase.
// Fire and forget: each call runs on its own within the hook's timeout, and a failure is logged.
void send_event_webhooks(boost::asio::any_io_executor ex, const core::canary& c, const core::canary_event& e,
                         const std::string& global_url);

}  // namespace canaryd
