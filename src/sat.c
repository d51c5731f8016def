#include "sat.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Literals: 2 * var for "var is true", 2 * var + 1 for "var is false". */
#define LIT_VAR(lit) ((lit) >> 1)
#define LIT_NEG(lit) ((lit) ^ 1)
#define LIT_IS_NEG(lit) ((lit)&1)

/* Reasons: a decision or level-0 fact, a clause id, or an at-most-one id (with reason_var). */
#define REASON_NONE UINT32_MAX
#define REASON_AMO_FLAG 0x80000000u

static void list_push(struct sat_list *l, uint32_t x)
{
	if (l->count == l->capacity) {
		l->capacity = l->capacity ? l->capacity * 2 : 4;
		l->items = xreallocarray(l->items, l->capacity, sizeof(*l->items));
	}
	l->items[l->count++] = x;
}

static enum sat_value lit_value(const struct sat *s, uint32_t lit)
{
	uint8_t v = s->value[LIT_VAR(lit)];

	if (v == SAT_UNDEF)
		return SAT_UNDEF;
	return (v == SAT_TRUE) != LIT_IS_NEG(lit) ? SAT_TRUE : SAT_FALSE;
}

/* Make room for every variable of the universe. */
static void grow_vars(struct sat *s)
{
	uint32_t need = s->u->impl_count;

	if (need > s->var_capacity) {
		uint32_t cap = s->var_capacity ? s->var_capacity : 1024;
		while (cap < need)
			cap *= 2;
		s->value = xreallocarray(s->value, cap, 1);
		s->level = xreallocarray(s->level, cap, sizeof(uint32_t));
		s->reason = xreallocarray(s->reason, cap, sizeof(uint32_t));
		s->reason_var = xreallocarray(s->reason_var, cap, sizeof(uint32_t));
		s->seen = xreallocarray(s->seen, cap, 1);
		s->trail = xreallocarray(s->trail, cap, sizeof(uint32_t));
		s->trail_limits = xreallocarray(s->trail_limits, cap + 1, sizeof(uint32_t));
		s->watches = xreallocarray(s->watches, 2 * (size_t)cap, sizeof(*s->watches));
		s->amo_occurrences = xreallocarray(s->amo_occurrences, cap, sizeof(*s->amo_occurrences));
		memset(s->watches + 2 * (size_t)s->var_capacity, 0,
		       2 * (size_t)(cap - s->var_capacity) * sizeof(*s->watches));
		memset(s->amo_occurrences + s->var_capacity, 0, (cap - s->var_capacity) * sizeof(*s->amo_occurrences));
		s->var_capacity = cap;
	}
	for (uint32_t v = s->var_count; v < need; v++) {
		s->value[v] = SAT_UNDEF;
		s->seen[v] = 0;
		s->watches[2 * v].count = s->watches[2 * v + 1].count = 0;
		s->amo_occurrences[v].count = 0;
	}
	s->var_count = need;
}

static void grow_disabled(uint8_t **flags, uint32_t *capacity, uint32_t need)
{
	if (need <= *capacity)
		return;
	uint32_t cap = *capacity ? *capacity : 1024;
	while (cap < need)
		cap *= 2;
	*flags = xreallocarray(*flags, cap, 1);
	memset(*flags + *capacity, 0, cap - *capacity);
	*capacity = cap;
}

static uint32_t *clause_lits(const struct sat *s, uint32_t c, uint32_t *len)
{
	const struct constraint_store *st = &s->u->store;

	*len = st->clause_start[c + 1] - st->clause_start[c];
	return st->lits + st->clause_start[c];
}

/* Watch a clause's first two literals; one-literal clauses become units. */
static void watch_clause(struct sat *s, uint32_t c, bool per_solve)
{
	uint32_t len;
	uint32_t *lits = clause_lits(s, c, &len);

	if (len == 1) {
		list_push(&s->units, c);
		return;
	}
	for (int i = 0; i < 2; i++) {
		list_push(&s->watches[lits[i]], c);
		if (per_solve)
			list_push(&s->dirty_lits, lits[i]);
	}
}

void sat_sync(struct sat *s)
{
	const struct constraint_store *st = &s->u->store;
	bool per_solve = s->base_clauses != UINT32_MAX;

	grow_vars(s);
	grow_disabled(&s->clause_disabled, &s->clause_disabled_capacity, st->clause_count + 1);
	grow_disabled(&s->amo_disabled, &s->amo_disabled_capacity, st->amo_count + 1);
	for (uint32_t c = s->watched_clauses; c < st->clause_count; c++)
		watch_clause(s, c, per_solve);
	s->watched_clauses = st->clause_count;
	for (uint32_t a = s->indexed_amos; a < st->amo_count; a++) {
		for (uint32_t i = st->amo_start[a]; i < st->amo_start[a + 1]; i++) {
			uint32_t v = st->amo_vars[i];
			list_push(&s->amo_occurrences[v], a);
			if (per_solve)
				list_push(&s->dirty_vars, v);
		}
	}
	s->indexed_amos = st->amo_count;
}

void sat_init(struct sat *s, struct universe *u)
{
	memset(s, 0, sizeof(*s));
	s->u = u;
	s->base_clauses = UINT32_MAX;
	sat_sync(s);
	s->base_clauses = u->store.clause_count;
	s->base_amos = u->store.amo_count;
	s->base_units = s->units.count;
}

void sat_release(struct sat *s)
{
	for (uint32_t l = 0; l < 2 * s->var_capacity; l++)
		free(s->watches[l].items);
	for (uint32_t v = 0; v < s->var_capacity; v++)
		free(s->amo_occurrences[v].items);
	free(s->watches);
	free(s->amo_occurrences);
	free(s->value);
	free(s->level);
	free(s->reason);
	free(s->reason_var);
	free(s->seen);
	free(s->trail);
	free(s->trail_limits);
	free(s->units.items);
	free(s->dirty_lits.items);
	free(s->dirty_vars.items);
	free(s->clause_disabled);
	free(s->amo_disabled);
	free(s->learned_scratch.items);
	free(s->assumptions.items);
	free(s->disabled_clauses.items);
	free(s->disabled_amos.items);
	memset(s, 0, sizeof(*s));
}

void sat_disable_clause(struct sat *s, uint32_t id)
{
	s->clause_disabled[id] = 1;
	list_push(&s->disabled_clauses, id);
}

void sat_disable_amo(struct sat *s, uint32_t id)
{
	s->amo_disabled[id] = 1;
	list_push(&s->disabled_amos, id);
}

static void assign(struct sat *s, uint32_t lit, uint32_t reason, uint32_t reason_var)
{
	uint32_t v = LIT_VAR(lit);

	s->value[v] = LIT_IS_NEG(lit) ? SAT_FALSE : SAT_TRUE;
	s->level[v] = s->level_count;
	s->reason[v] = reason;
	s->reason_var[v] = reason_var;
	s->trail[s->trail_count++] = lit;
}

void sat_assume_false(struct sat *s, uint32_t var)
{
	grow_vars(s);
	list_push(&s->assumptions, var);
}

/*
 * A conflict is described as the literals of a clause that are all false: a clause id, or the
 * two variables of an at-most-one that are both true.
 */
struct conflict {
	bool found;
	uint32_t clause; /* clause id, or UINT32_MAX for an at-most-one conflict */
	uint32_t vars[2];
};

/* Propagate the consequences of VAR becoming true through its at-most-one constraints. */
static bool propagate_amo(struct sat *s, uint32_t var, struct conflict *conflict)
{
	const struct constraint_store *st = &s->u->store;
	const struct sat_list *occ = &s->amo_occurrences[var];

	for (uint32_t k = 0; k < occ->count; k++) {
		uint32_t a = occ->items[k];
		if (s->amo_disabled[a])
			continue;
		for (uint32_t i = st->amo_start[a]; i < st->amo_start[a + 1]; i++) {
			uint32_t other = st->amo_vars[i];
			if (other == var)
				continue;
			if (s->value[other] == SAT_TRUE) {
				conflict->found = true;
				conflict->clause = UINT32_MAX;
				conflict->vars[0] = var;
				conflict->vars[1] = other;
				return false;
			}
			if (s->value[other] == SAT_UNDEF) {
				assign(s, 2 * other + 1, REASON_AMO_FLAG | a, var);
				s->propagations++;
			}
		}
	}
	return true;
}

/* Visit the clauses watching FALSIFIED, which just became false (two watched literals). */
static bool propagate_clauses(struct sat *s, uint32_t falsified, struct conflict *conflict)
{
	struct sat_list *ws = &s->watches[falsified];
	uint32_t kept = 0, i = 0;
	bool ok = true;

	for (; i < ws->count; i++) {
		uint32_t c = ws->items[i];
		if (!ok || s->clause_disabled[c]) {
			ws->items[kept++] = c;
			continue;
		}

		uint32_t len;
		uint32_t *lits = clause_lits(s, c, &len);
		if (lits[0] == falsified) {
			lits[0] = lits[1];
			lits[1] = falsified;
		}
		if (lit_value(s, lits[0]) == SAT_TRUE) {
			ws->items[kept++] = c;
			continue;
		}

		/* Look for a new literal to watch. */
		bool moved = false;
		for (uint32_t j = 2; j < len; j++) {
			if (lit_value(s, lits[j]) != SAT_FALSE) {
				lits[1] = lits[j];
				lits[j] = falsified;
				list_push(&s->watches[lits[1]], c);
				if (c >= s->base_clauses)
					list_push(&s->dirty_lits, lits[1]);
				moved = true;
				break;
			}
		}
		if (moved)
			continue;

		ws->items[kept++] = c;
		if (lit_value(s, lits[0]) == SAT_FALSE) {
			conflict->found = true;
			conflict->clause = c;
			ok = false;
		} else {
			assign(s, lits[0], c, 0);
			s->propagations++;
		}
	}
	ws->count = kept;
	return ok;
}

static bool propagate(struct sat *s, struct conflict *conflict)
{
	conflict->found = false;
	while (s->queue_head < s->trail_count) {
		uint32_t lit = s->trail[s->queue_head++];
		if (!LIT_IS_NEG(lit) && !propagate_amo(s, LIT_VAR(lit), conflict))
			return false;
		if (!propagate_clauses(s, LIT_NEG(lit), conflict))
			return false;
	}
	return true;
}

/* Collect the literals (all false) of the clause explaining the conflict or an assignment. */
static void reason_lits(const struct sat *s, uint32_t reason, uint32_t reason_var, uint32_t implied_var,
			struct sat_list *out)
{
	out->count = 0;
	if (reason & REASON_AMO_FLAG) {
		/* At-most-one: "not reason_var or not implied_var". */
		list_push(out, 2 * reason_var + 1);
		list_push(out, 2 * implied_var + 1);
		return;
	}
	uint32_t len;
	const uint32_t *lits = clause_lits(s, reason, &len);
	for (uint32_t i = 0; i < len; i++)
		list_push(out, lits[i]);
}

static void cancel_until(struct sat *s, uint32_t level)
{
	if (s->level_count <= level)
		return;
	uint32_t keep = s->trail_limits[level];
	for (uint32_t i = keep; i < s->trail_count; i++)
		s->value[LIT_VAR(s->trail[i])] = SAT_UNDEF;
	s->trail_count = keep;
	s->queue_head = keep;
	s->level_count = level;
}

/* Append a learned clause to the universe's store and watch it. */
static uint32_t add_learned(struct sat *s, const struct sat_list *lits)
{
	struct constraint_store *st = &s->u->store;

	if (st->clause_count + 2 > st->clause_capacity) {
		st->clause_capacity = st->clause_capacity * 2 + 4;
		st->clause_start = xreallocarray(st->clause_start, st->clause_capacity, sizeof(uint32_t));
	}
	for (uint32_t i = 0; i < lits->count; i++) {
		if (st->lit_count == st->lit_capacity) {
			st->lit_capacity = st->lit_capacity * 2 + 4;
			st->lits = xreallocarray(st->lits, st->lit_capacity, sizeof(uint32_t));
		}
		st->lits[st->lit_count++] = lits->items[i];
	}
	uint32_t c = st->clause_count++;
	st->clause_start[st->clause_count] = st->lit_count;
	grow_disabled(&s->clause_disabled, &s->clause_disabled_capacity, st->clause_count + 1);
	s->clause_disabled[c] = 0;
	if (lits->count >= 2) {
		list_push(&s->watches[lits->items[0]], c);
		list_push(&s->watches[lits->items[1]], c);
		list_push(&s->dirty_lits, lits->items[0]);
		list_push(&s->dirty_lits, lits->items[1]);
	}
	s->watched_clauses = st->clause_count;
	return c;
}

/* First-UIP conflict analysis; returns the level to jump back to and leaves the clause in learned_scratch. */
static uint32_t analyze(struct sat *s, const struct conflict *conflict)
{
	struct sat_list *learned = &s->learned_scratch;
	struct sat_list clause = { 0 };
	uint32_t pending = 0, index = s->trail_count, uip = 0;
	bool first = true;

	learned->count = 0;
	list_push(learned, 0); /* slot for the asserting literal */

	if (conflict->clause == UINT32_MAX) {
		list_push(&clause, 2 * conflict->vars[0] + 1);
		list_push(&clause, 2 * conflict->vars[1] + 1);
	} else {
		reason_lits(s, conflict->clause, 0, 0, &clause);
	}

	for (;;) {
		for (uint32_t i = 0; i < clause.count; i++) {
			uint32_t lit = clause.items[i];
			uint32_t v = LIT_VAR(lit);
			if (!first && v == LIT_VAR(uip))
				continue;
			if (s->seen[v] || s->level[v] == 0)
				continue;
			s->seen[v] = 1;
			if (s->level[v] == s->level_count)
				pending++;
			else
				list_push(learned, lit);
		}
		first = false;

		/* The next literal of the current level on the trail that takes part. */
		do
			index--;
		while (!s->seen[LIT_VAR(s->trail[index])]);
		uip = s->trail[index];
		s->seen[LIT_VAR(uip)] = 0;
		pending--;
		if (pending == 0)
			break;
		uint32_t v = LIT_VAR(uip);
		reason_lits(s, s->reason[v], s->reason_var[v], v, &clause);
	}
	learned->items[0] = LIT_NEG(uip);
	free(clause.items);

	/* Jump back to the second-highest level in the clause, and put that literal second. */
	uint32_t back = 0, at = 1;
	for (uint32_t i = 1; i < learned->count; i++) {
		uint32_t v = LIT_VAR(learned->items[i]);
		s->seen[v] = 0;
		if (s->level[v] > back) {
			back = s->level[v];
			at = i;
		}
	}
	if (learned->count > 1) {
		uint32_t tmp = learned->items[1];
		learned->items[1] = learned->items[at];
		learned->items[at] = tmp;
	}
	return back;
}

static bool assert_level_zero(struct sat *s)
{
	/* One-literal clauses. */
	for (uint32_t i = 0; i < s->units.count; i++) {
		uint32_t c = s->units.items[i];
		if (s->clause_disabled[c])
			continue;
		uint32_t len;
		uint32_t lit = clause_lits(s, c, &len)[0];
		enum sat_value v = lit_value(s, lit);
		if (v == SAT_FALSE)
			return false;
		if (v == SAT_UNDEF)
			assign(s, lit, c, 0);
	}
	/* Rejected candidates. */
	for (uint32_t i = 0; i < s->assumptions.count; i++) {
		uint32_t var = s->assumptions.items[i];
		if (s->value[var] == SAT_TRUE)
			return false;
		if (s->value[var] == SAT_UNDEF)
			assign(s, 2 * var + 1, REASON_NONE, 0);
	}
	return true;
}

bool sat_solve(struct sat *s, sat_decider decide, void *ctx)
{
	struct conflict conflict = { 0 };

	sat_sync(s);
	s->conflicts = s->decisions = s->propagations = 0;
	s->level_count = 0;
	if (!assert_level_zero(s))
		return false;

	for (;;) {
		if (!propagate(s, &conflict)) {
			s->conflicts++;
			if (s->level_count == 0)
				return false;
			uint32_t back = analyze(s, &conflict);
			cancel_until(s, back);
			struct sat_list *learned = &s->learned_scratch;
			uint32_t c = add_learned(s, learned);
			assign(s, learned->items[0], learned->count == 1 ? REASON_NONE : c, 0);
			continue;
		}

		uint32_t var = decide(ctx, s);
		if (var == UINT32_MAX)
			return true;
		s->decisions++;
		s->trail_limits[s->level_count++] = s->trail_count;
		assign(s, 2 * var, REASON_NONE, 0);
	}
}

void sat_reset(struct sat *s)
{
	/* Assignments. */
	for (uint32_t i = 0; i < s->trail_count; i++)
		s->value[LIT_VAR(s->trail[i])] = SAT_UNDEF;
	s->trail_count = s->queue_head = s->level_count = 0;
	s->assumptions.count = 0;

	/* Watches and occurrences of per-solve constraints. */
	for (uint32_t i = 0; i < s->dirty_lits.count; i++) {
		struct sat_list *ws = &s->watches[s->dirty_lits.items[i]];
		uint32_t kept = 0;
		for (uint32_t j = 0; j < ws->count; j++)
			if (ws->items[j] < s->base_clauses)
				ws->items[kept++] = ws->items[j];
		ws->count = kept;
	}
	s->dirty_lits.count = 0;
	for (uint32_t i = 0; i < s->dirty_vars.count; i++) {
		struct sat_list *occ = &s->amo_occurrences[s->dirty_vars.items[i]];
		uint32_t kept = 0;
		for (uint32_t j = 0; j < occ->count; j++)
			if (occ->items[j] < s->base_amos)
				occ->items[kept++] = occ->items[j];
		occ->count = kept;
	}
	s->dirty_vars.count = 0;
	s->units.count = s->base_units;

	for (uint32_t i = 0; i < s->disabled_clauses.count; i++)
		s->clause_disabled[s->disabled_clauses.items[i]] = 0;
	for (uint32_t i = 0; i < s->disabled_amos.count; i++)
		s->amo_disabled[s->disabled_amos.items[i]] = 0;
	s->disabled_clauses.count = s->disabled_amos.count = 0;
	s->watched_clauses = s->base_clauses;
	s->indexed_amos = s->base_amos;
}
