#pragma once
// Flagger's CallWebhook: POST the CanaryWebhookPayload {"name","namespace","phase","checksum",
// "metadata"} as JSON to a hook's URL, within the hook's timeout (10 s default), with up
// to `retries` more attempts on transport errors and 5xx answers. Success is a status up to 202,
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

}  // namespace canaryd
