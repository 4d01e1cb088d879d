#pragma once
// What one normalised webhook Event means to the promotion engine: a trigger for source
// repositories (a merged PR, a push), and inputs for the runs whose promotion PRs it concerns.
// Comments and reviews need the author's permission and teams (a host API call) before the
// engine can authorize them: they come out with `needs_actor_facts` set and the service fills in
// ActorFacts::permission and ::teams first.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/engine.hpp"
#include "pipeline/triggers.hpp"
#include "webhooks/event.hpp"

namespace tollgate::service {

struct SourceTrigger {
  std::string repo;  // the source repository
  std::string sha;   // the commit to read .tollgate.yaml at and to promote
  std::int64_t pr = 0;  // merged: the PR (its files are the changed files when the list is needed)
  pipeline::TriggerEvent event;
};

struct EngineEvent {
  std::optional<SourceTrigger> trigger;
  std::vector<pipeline::Input> inputs;  // to offer to every running run (the engine ignores what is not its own)
  bool needs_actor_facts = false;       // inputs hold a CommentCreated / ReviewSubmitted to complete
};

// `bot_login`: tollgate's own account on the host; its own merges, comments and reviews are
// recognised as such (a merge by it is not "merged by a person"; its comments are ignored).
[[nodiscard]] EngineEvent translate(const webhooks::Event& event, std::string_view bot_login);

[[nodiscard]] pipeline::CheckState check_state(webhooks::StatusEvent::State state);

}  // namespace tollgate::service
