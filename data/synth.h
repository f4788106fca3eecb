// `portrait synth`: realistic synthetic e-commerce logs with planted structure, deterministic
// from a seed. Users belong to K latent segments with distinct category preferences, price
// sensitivity, activity and language; items have Zipf popularity within categories; browse
// sessions and view -> click -> cart -> purchase funnels; repeat and co-purchases; English and
// Chinese reviews whose wording depends on segment, category and rating (sentiment follows
// the rating). Purchases of category c arrive as a Poisson process with rate
// lambda_uc + copurchase_prob * lambda_u,c-1 per day, so the oracle probability of buying c
// within a window of W days is 1 - exp(-W * rate): written to truth.csv.
// Users also have personal taste within their segment: each has `favourites` items per category
// (drawn once, by popularity and price like any pick), and every item pick -- browse or
// purchase -- is one of them with probability favourite_prob. So two users of one segment want
// different items, and only their history says which: a segment-level model cannot rank them.
//
// Outputs in output_dir:
//   events_00000.csv ...  the log (csv | tsv | jsonl, optionally .gz), grouped by user
//   catalogue.csv         item_id, category, title, price
//   truth.csv             user_id, segment, language, activity, p_<category>...
//   truth.json            the planted parameters (segments, window, seed)
//   faults.json           {"injected": {reason: count}, ...}: what `portrait prep` must report
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/config/node.h"

namespace portrait::data {

struct SynthParams {
  std::string output_dir;             ///< mandatory
  uint64_t seed = 42;                 ///< everything is a function of the seed
  int64_t users = 10000;              ///< normal (non-bot) users
  int segments = 8;                   ///< latent segments K
  int categories = 20;                ///< item categories
  int64_t items = 5000;               ///< catalogue size (spread evenly over categories)
  double zipf_exponent = 1.1;         ///< item popularity within a category
  std::string start = "2024-01-01";   ///< first day of the log (ISO date, UTC)
  int days = 120;                     ///< log length in days
  double sessions_per_day = 0.15;     ///< browse sessions per user-day (times user activity)
  double purchase_rate = 0.04;        ///< purchases per user-day (times activity and preference)
  double repeat_prob = 0.2;           ///< a purchase re-buys an earlier item of the category
  double copurchase_prob = 0.15;      ///< a purchase adds a complement from category c+1
  double favourite_prob = 0.5;        ///< an item pick comes from the user's own favourites
  int favourites = 5;                 ///< favourites per user and category
  double review_prob = 0.35;          ///< a purchase is followed by a review
  double pii_fraction = 0.03;         ///< reviews containing an email/phone/card/URL
  double label_window_days = 14;      ///< window W of the oracle probabilities in truth.csv
  int max_user_events = 2000;         ///< cap per normal user (keep below prep's bot cap)
  std::string format = "csv";         ///< csv | tsv | jsonl
  bool gzip = false;                  ///< write .gz files
  int files = 1;                      ///< number of event files (users split round-robin)
  bool alias_event_names = true;      ///< also emit platform names (pv, add_to_cart, buy)
  // Fault injection: extra rows, each with exactly one defect prep rejects.
  double fault_fraction = 0.01;       ///< injected bad rows per valid row
  int64_t bot_users = 3;              ///< users with bot_events events each
  int64_t bot_events = 6000;          ///< must exceed data.clean.max_events_per_user
  int64_t max_field_length = 4096;    ///< must equal data.clean.max_field_length
  double rating_max = 5;              ///< must equal data.clean.rating_max
};

/// Section `synth`; rejects unknown keys.
SynthParams synth_params_from_config(const cfg::Node& resolved_root);

struct SynthSummary {
  int64_t users = 0;          ///< normal users written
  int64_t active_users = 0;   ///< normal users with at least one event
  int64_t valid_events = 0;   ///< rows prep should accept (before dedup; duplicates excluded)
  int64_t rows = 0;           ///< all rows written, faults and bots included
  std::map<std::string, int64_t> injected;  ///< reason name -> rows prep must quarantine
  std::string output_dir;
};

SynthSummary run_synth(const SynthParams& p);

}  // namespace portrait::data
