/*
 * search_bench.c - how well meta.search finds the tables a question is
 * about, against a real mark-metadata and a generated Postgres warehouse:
 * 40 tables a question is asked about, spread over seven schemas (sales,
 * marketing, finance, logistics, hr, product, support), each with table
 * and column comments; archive, staging and backup copies of most of them;
 * and a few hundred filler tables built from the same domain words, so
 * that distractors share the questions' words. Names are snake_case, some
 * camelCase. Each question is asked once (budget 4000) after the first
 * sync; prints recall@1 and recall@5 (the share of a question's right
 * tables found in the top k, k capped at the number of right tables,
 * averaged over the questions), the mean latency, and the questions whose
 * first answer was wrong, for two sets of 40 questions: the one the ranking
 * is tuned on, and a held-out one written apart and never tuned against.
 * Asserts nothing.
 *
 * Environment read: mt.h's (MARK_TEST_DATABASE_URL, MARK_BIN_DIR, ...).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"

#define BUDGET    4000
#define TOP_K     5
#define SYNC_WAIT 60000

/* A table a question is about: schema, name (quoted when camelCase), comment, columns. */
typedef struct {
	const char *schema, *name, *comment;
	/* "name type|comment;..." */
	const char *columns;
} core_table;

static const core_table core[] = {
    {"sales", "orders", "One row per customer order placed in the web shop or by a sales rep",
     "order_id bigint|Order number;customer_id bigint|Customer who placed the order;"
     "ordered_at timestamptz|When the order was placed;status text|open, shipped or cancelled;"
     "total_amount numeric|Order total including tax"},
    {"sales", "order_line_items", "Each product line of an order with quantity and unit price",
     "order_id bigint|Order the line belongs to;sku text|Product sold;"
     "quantity int|Units sold;unit_price numeric|Price of one unit"},
    {"sales", "customers", "Customers who bought at least once: name, country and segment",
     "customer_id bigint|Customer key;full_name text|Name;country_code text|ISO country;"
     "segment text|consumer, smb or enterprise"},
    {"sales", "sales_reps", "Sales representatives with their territory and yearly quota",
     "rep_id int|Representative key;territory text|Sales territory;quota numeric|Yearly quota"},
    {"sales", "quotes", "Price quotes sent to prospects before they order",
     "quote_id bigint|Quote number;prospect_id bigint|Prospect;converted_order_id bigint|Order "
     "the quote became, if any;quoted_amount numeric|Amount quoted"},
    {"sales", "discount_codes", "Promotion discount codes and the percentage off they give",
     "code text|The code typed at checkout;percent_off numeric|Reduction in percent;"
     "valid_until date|Last day it works"},
    {"sales", "\"customerLifetimeValue\"", "Predicted lifetime value (LTV) of each customer",
     "customer_id bigint|Customer;predicted_ltv numeric|Predicted revenue over the relationship"},
    {"marketing", "campaigns", "Marketing campaigns with channel, budget and start and end dates",
     "campaign_id int|Campaign key;channel text|email, search, social;budget numeric|Planned "
     "spend;starts_on date|Start;ends_on date|End"},
    {"marketing", "ad_spend_daily", "Daily advertising spend by ad channel (Google Ads, Meta)",
     "day date|Day;channel text|Ad network;spend numeric|Money spent;impressions bigint|Ads shown"},
    {"marketing", "email_sends", "Newsletter and email sends with opens and clicks",
     "send_id bigint|Send;newsletter text|Newsletter name;opened boolean|Opened by the "
     "recipient;clicked boolean|A link was clicked"},
    {"marketing", "web_sessions", "Website visits with landing page, referrer and UTM source",
     "session_id uuid|Visit;landing_page text|First page seen;referrer text|Referring site;"
     "utm_source text|Campaign source"},
    {"marketing", "\"leadScores\"", "Lead scoring of prospects by the marketing automation tool",
     "lead_id bigint|Lead;score int|Score from 0 to 100;scored_at timestamptz|When scored"},
    {"marketing", "attribution_touchpoints",
     "Touchpoints for multi-touch attribution of conversions to marketing channels",
     "conversion_id bigint|Conversion;channel text|Channel touched;credit numeric|Share of credit"},
    {"finance", "invoices", "Invoices issued to customers: amount due, due date and paid flag",
     "invoice_id bigint|Invoice number;customer_id bigint|Billed customer;amount_due "
     "numeric|Amount;due_date date|Payment due;is_paid boolean|Fully paid"},
    {"finance", "payments", "Payments received against invoices, by payment method (card, wire)",
     "payment_id bigint|Payment;invoice_id bigint|Invoice paid;method text|card, wire transfer, "
     "direct debit;amount numeric|Amount received"},
    {"finance", "general_ledger_entries",
     "Double-entry general ledger journal lines: account, debit and credit",
     "entry_id bigint|Journal line;account_code text|Ledger account;debit numeric|Debit;"
     "credit numeric|Credit"},
    {"finance", "budgets", "Annual budget per cost center and month",
     "cost_center text|Cost center;month date|Month;budget_amount numeric|Budgeted amount"},
    {"finance", "exchange_rates", "Daily currency exchange rates to EUR",
     "day date|Day;currency text|ISO currency code;rate_to_eur numeric|Units of EUR per unit"},
    {"finance", "expense_reports", "Employee expense claims (travel, meals) and approval status",
     "report_id bigint|Claim;employee_id int|Claimant;category text|travel, meals, other;"
     "amount numeric|Claimed;approved boolean|Approved by the manager"},
    {"finance", "tax_rates", "VAT and sales tax rates by country",
     "country_code text|Country;vat_rate numeric|Standard VAT rate in percent"},
    {"logistics", "shipments",
     "Shipments sent to customers with carrier, tracking number and "
     "delivery date",
     "shipment_id bigint|Shipment;carrier text|DHL, UPS, ...;tracking_number text|Carrier "
     "tracking;shipped_at timestamptz|Left the warehouse;delivered_at timestamptz|Delivered"},
    {"logistics", "warehouses", "Our warehouses and distribution centers and where they are",
     "warehouse_id int|Warehouse;city text|City;country_code text|Country"},
    {"logistics", "inventory_levels", "Stock on hand per product and warehouse, daily",
     "day date|Day;sku text|Product;warehouse_id int|Warehouse;on_hand int|Units in stock"},
    {"logistics", "purchase_orders", "Purchase orders to suppliers to restock goods",
     "po_id bigint|Purchase order;supplier_id int|Supplier;ordered_on date|Date;"
     "total numeric|Order value"},
    {"logistics", "suppliers", "Suppliers (vendors) we buy goods from and their lead time",
     "supplier_id int|Supplier;vendor_name text|Name;lead_time_days int|Days from order to "
     "delivery"},
    {"logistics", "returns", "Products returned by customers, with the reason and the refund",
     "return_id bigint|Return;sku text|Product returned;reason text|Why it came back;"
     "refund_amount numeric|Refunded"},
    {"hr", "employees", "Employees: hire date, department, manager and job title",
     "employee_id int|Employee;department text|Department;manager_id int|Manager;"
     "job_title text|Title;hired_on date|Hire date"},
    {"hr", "salaries", "Salary history per employee: base pay and bonus",
     "employee_id int|Employee;effective_from date|From;base_salary numeric|Yearly base pay;"
     "bonus numeric|Bonus"},
    {"hr", "time_off_requests", "Vacation and sick leave requests of employees",
     "request_id bigint|Request;employee_id int|Employee;kind text|vacation or sick;"
     "days numeric|Days off"},
    {"hr", "job_applications", "Candidates applying to open positions (recruiting pipeline)",
     "application_id bigint|Application;candidate_name text|Candidate;position text|Open "
     "position;stage text|screen, interview, offer"},
    {"hr", "\"performanceReviews\"", "Yearly performance review ratings of employees",
     "employee_id int|Employee;year int|Review year;rating int|Rating from 1 to 5"},
    {"product", "products", "Product catalog: SKU, name, category and list price",
     "sku text|Stock keeping unit;product_name text|Name;category_id int|Category;"
     "list_price numeric|List price"},
    {"product", "product_categories", "Category tree of the products",
     "category_id int|Category;parent_id int|Parent category;category_name text|Name"},
    {"product", "feature_usage_events", "Events recorded when users use a feature of the app",
     "event_id bigint|Event;user_id bigint|User;feature text|Feature used;"
     "occurred_at timestamptz|When"},
    {"product", "app_releases", "Mobile and web app release versions and their dates",
     "version text|Version;platform text|ios, android, web;released_on date|Release date"},
    {"product", "subscriptions",
     "SaaS subscriptions: plan, monthly recurring revenue (MRR), start and cancel date",
     "subscription_id bigint|Subscription;plan text|Plan;mrr numeric|Monthly recurring revenue;"
     "started_on date|Start;cancelled_on date|Cancellation (churn)"},
    {"support", "tickets", "Customer support tickets: priority, status, opened and resolved",
     "ticket_id bigint|Ticket;priority text|low to urgent;opened_at timestamptz|Opened;"
     "resolved_at timestamptz|Resolved;agent_id int|Agent handling it"},
    {"support", "csat_surveys", "Customer satisfaction (CSAT) survey answers after a ticket",
     "ticket_id bigint|Ticket;score int|Satisfaction from 1 to 5;comment text|Free text"},
    {"support", "agents", "Support agents with their team and shift",
     "agent_id int|Agent;agent_name text|Name;team text|Team;shift text|Shift"},
    {"support", "chat_transcripts", "Live chat conversations with customers",
     "chat_id bigint|Chat;customer_id bigint|Customer;transcript text|The conversation"},
};
#define NCORE (int)(sizeof(core) / sizeof(core[0]))

/* A question and its right tables ("schema.name", up to three). */
typedef struct {
	const char *q;
	const char *right[3];
} question;

static const question questions[] = {
    {"how many orders were placed last month", {"sales.orders"}},
    {"which products sell the most units", {"sales.order_line_items"}},
    {"which countries do our customers come from", {"sales.customers"}},
    {"who are the sales reps in each territory and what is their quota", {"sales.sales_reps"}},
    {"how many quotes turned into orders", {"sales.quotes"}},
    {"which discount codes give the biggest reduction", {"sales.discount_codes"}},
    {"what is the predicted lifetime value of each customer", {"sales.customerLifetimeValue"}},
    {"what was the budget of each marketing campaign", {"marketing.campaigns"}},
    {"how much did we spend on ads per day", {"marketing.ad_spend_daily"}},
    {"what is the open rate of our newsletters", {"marketing.email_sends"}},
    {"which referrers bring the most website visitors", {"marketing.web_sessions"}},
    {"which leads have the highest score", {"marketing.leadScores"}},
    {"which channel gets credit for conversions", {"marketing.attribution_touchpoints"}},
    {"which invoices are overdue and unpaid", {"finance.invoices"}},
    {"how do customers pay, by card or bank wire", {"finance.payments"}},
    {"show the journal lines of the general ledger", {"finance.general_ledger_entries"}},
    {"what is the budget for each cost center", {"finance.budgets"}},
    {"what was the dollar to euro exchange rate", {"finance.exchange_rates"}},
    {"how much did employees claim for travel expenses", {"finance.expense_reports"}},
    {"what VAT rate applies in each country", {"finance.tax_rates"}},
    {"how long do deliveries take per carrier", {"logistics.shipments"}},
    {"where are our distribution centers", {"logistics.warehouses"}},
    {"how much stock do we have left of each product", {"logistics.inventory_levels"}},
    {"what did we order from suppliers to restock", {"logistics.purchase_orders"}},
    {"which vendors have the longest lead time", {"logistics.suppliers"}},
    {"why do customers return products", {"logistics.returns"}},
    {"who was hired this year in each department", {"hr.employees"}},
    {"what is the average salary by job title", {"hr.salaries", "hr.employees"}},
    {"how many sick days did people take", {"hr.time_off_requests"}},
    {"how many candidates applied to each open position", {"hr.job_applications"}},
    {"which employees got the best performance rating", {"hr.performanceReviews"}},
    {"what is the list price of each SKU", {"product.products"}},
    {"list the product categories and their parent category", {"product.product_categories"}},
    {"which app features are used most", {"product.feature_usage_events"}},
    {"when was each app version released", {"product.app_releases"}},
    {"what is our monthly recurring revenue by plan", {"product.subscriptions"}},
    {"how long does it take to resolve support tickets", {"support.tickets"}},
    {"what is our customer satisfaction score", {"support.csat_surveys"}},
    {"which support agents handle the most tickets", {"support.agents", "support.tickets"}},
    {"find live chat conversations about refunds", {"support.chat_transcripts"}},
};
#define NQ (int)(sizeof(questions) / sizeof(questions[0]))

/*
 * A second set, written apart from the first and never used to tune the
 * ranking: other words for the same tables, as other people would ask.
 */
static const question heldout[] = {
    {"total value of orders per week", {"sales.orders"}},
    {"average quantity per order line", {"sales.order_line_items"}},
    {"how many enterprise customers do we have", {"sales.customers"}},
    {"which rep beat their quota", {"sales.sales_reps"}},
    {"what share of quotes convert", {"sales.quotes"}},
    {"list active promo codes with percent off", {"sales.discount_codes"}},
    {"customers with the highest expected lifetime value", {"sales.customerLifetimeValue"}},
    {"which campaigns ran in spring", {"marketing.campaigns"}},
    {"daily advertising spend by platform", {"marketing.ad_spend_daily"}},
    {"how many emails bounced last week", {"marketing.email_sends"}},
    {"average session length on the website", {"marketing.web_sessions"}},
    {"top scored leads this quarter", {"marketing.leadScores"}},
    {"touchpoints before a conversion", {"marketing.attribution_touchpoints"}},
    {"total amount invoiced per customer", {"finance.invoices"}},
    {"payments received in March", {"finance.payments"}},
    {"ledger entries for account 4000", {"finance.general_ledger_entries"}},
    {"planned spend versus budget by department", {"finance.budgets"}},
    {"currency conversion rates used for reporting", {"finance.exchange_rates"}},
    {"which employees filed the largest expense claims", {"finance.expense_reports"}},
    {"sales tax percentage per state", {"finance.tax_rates"}},
    {"shipments delayed more than three days", {"logistics.shipments"}},
    {"capacity of each warehouse", {"logistics.warehouses"}},
    {"products below their reorder level", {"logistics.inventory_levels"}},
    {"open purchase orders to vendors", {"logistics.purchase_orders"}},
    {"supplier contact details and countries", {"logistics.suppliers"}},
    {"most common reasons for returned items", {"logistics.returns"}},
    {"headcount by department", {"hr.employees"}},
    {"pay ranges per role", {"hr.salaries"}},
    {"vacation days taken per employee", {"hr.time_off_requests"}},
    {"applicants who reached the interview stage", {"hr.job_applications"}},
    {"last review score of each engineer", {"hr.performanceReviews"}},
    {"product catalogue with prices", {"product.products"}},
    {"which category does each product belong to", {"product.product_categories"}},
    {"daily active users of the export feature", {"product.feature_usage_events"}},
    {"release notes of the latest app version", {"product.app_releases"}},
    {"how many subscribers churned last month", {"product.subscriptions"}},
    {"tickets breaching their SLA", {"support.tickets"}},
    {"survey responses with low satisfaction", {"support.csat_surveys"}},
    {"which team does each support agent belong to", {"support.agents"}},
    {"chat logs mentioning a late delivery", {"support.chat_transcripts"}},
};
#define NHELD (int)(sizeof(heldout) / sizeof(heldout[0]))

/* Words the filler tables are built from, per schema. */
static const char *const domains[][9] = {
    {"sales", "order", "customer", "revenue", "deal", "pipeline", "quota", "region", "rep"},
    {"marketing", "campaign", "lead", "email", "ad", "channel", "audience", "conversion", "visit"},
    {"finance", "invoice", "payment", "ledger", "budget", "cost", "revenue", "tax", "account"},
    {"logistics", "shipment", "stock", "warehouse", "carrier", "supplier", "route", "delivery",
     "order"},
    {"hr", "employee", "salary", "headcount", "department", "leave", "candidate", "training",
     "payroll"},
    {"product", "feature", "product", "release", "user", "subscription", "plan", "event", "sku"},
    {"support", "ticket", "agent", "customer", "sla", "chat", "survey", "escalation", "refund"},
};
#define NDOM (int)(sizeof(domains) / sizeof(domains[0]))

static const char *const shapes[] = {"daily",    "weekly",   "monthly", "by_region", "summary",
                                     "snapshot", "forecast", "targets", "history",   "facts"};
static const char *const shape_words[] = {
    "Daily totals of",   "Weekly totals of",    "Monthly totals of", "Totals by region of",
    "Summary of",        "Nightly snapshot of", "Forecast of",       "Targets set for",
    "Change history of", "Fact table of"};

/* Generic columns of filler tables. */
static const char *const filler_cols[] = {
    "created_at timestamptz|When the row was created",
    "updated_at timestamptz|Last change",
    "amount numeric|Amount in EUR",
    "region_code text|Sales region",
    "status text|Workflow status",
    "count bigint|Number of records",
    "owner_id int|Owning team member",
    "source_system text|System of record",
    "customer_id bigint|Customer",
    "country_code text|Country",
};

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

/* The SQL that builds the warehouse, growing. */
static char *sql;
static size_t sql_len, sql_cap;
static int ntables;

static void emit(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(sql + sql_len, sql_cap - sql_len, fmt, ap);
		va_end(ap);
		if (n >= 0 && sql_len + (size_t)n < sql_cap)
			break;
		sql_cap = sql_cap ? sql_cap * 2 : 1 << 16;
		if (!(sql = realloc(sql, sql_cap)))
			abort();
	}
	sql_len += (size_t)n;
}

/* One table: columns as "name type|comment;..."; name already quoted when it must be. */
static void table(const char *schema, const char *name, const char *comment, const char *cols)
{
	char buf[1024], *save = NULL, *c;

	snprintf(buf, sizeof(buf), "%s", cols);
	emit("CREATE TABLE %s.%s (id bigserial PRIMARY KEY", schema, name);
	for (c = strtok_r(buf, ";", &save); c; c = strtok_r(NULL, ";", &save))
		emit(", %.*s", (int)strcspn(c, "|"), c);
	emit(");\nCOMMENT ON TABLE %s.%s IS '%s';\n", schema, name, comment);
	snprintf(buf, sizeof(buf), "%s", cols);
	for (c = strtok_r(buf, ";", &save); c; c = strtok_r(NULL, ";", &save)) {
		char *bar = strchr(c, '|');

		if (bar)
			emit("COMMENT ON COLUMN %s.%s.%.*s IS '%s';\n", schema, name,
			     (int)strcspn(c, " "), c, bar + 1);
	}
	ntables++;
}

static void build_sql(void)
{
	static const char *const copies[][2] = {
	    {"%s_archive", "Archived copy (before 2020) of: %s"},
	    {"stg_%s", "Staging load, not cleaned: %s"},
	    {"%s_backup_2023", "One-off backup of: %s"},
	};
	int i, j, k;

	for (i = 0; i < NDOM; i++)
		emit("CREATE SCHEMA %s;\n", domains[i][0]);
	for (i = 0; i < NCORE; i++) {
		table(core[i].schema, core[i].name, core[i].comment, core[i].columns);
		/* Two copies of most tables, with the same columns and a comment that repeats it.
		 */
		for (k = 0; k < 3; k++) {
			char name[128], comment[400], bare[64];

			if ((i + k) % 3 == 2 || core[i].name[0] == '"')
				continue;
			snprintf(bare, sizeof(bare), "%s", core[i].name);
			snprintf(name, sizeof(name), copies[k][0], bare);
			snprintf(comment, sizeof(comment), copies[k][1], core[i].comment);
			table(core[i].schema, name, comment, core[i].columns);
		}
	}
	/* Fillers: every pair of a schema's words in a shape, some in camelCase. */
	for (i = 0; i < NDOM; i++)
		for (j = 1; j < 9; j++)
			for (k = 0; k < 8; k++) {
				const char *a = domains[i][j], *b = domains[i][1 + (j + k) % 8];
				unsigned s = next_rand() % 10;
				char name[128], comment[300], cols[600];
				int c, nc = 2 + (int)(next_rand() % 3), used = 0;

				if (a == b)
					continue;
				if (next_rand() % 6 == 0 && !strchr(shapes[s], '_'))
					snprintf(name, sizeof(name), "\"%s%c%s%c%s\"", a, b[0] - 32,
					         b + 1, shapes[s][0] - 32, shapes[s] + 1);
				else
					snprintf(name, sizeof(name), "%s_%s_%s", a, b, shapes[s]);
				snprintf(comment, sizeof(comment),
				         "%s %s %s records for the %s team", shape_words[s], a, b,
				         domains[i][0]);
				cols[0] = '\0';
				for (c = 0; c < nc; c++) {
					int pick = (int)(next_rand() % 10);

					if (used & (1 << pick))
						continue;
					used |= 1 << pick;
					snprintf(cols + strlen(cols), sizeof(cols) - strlen(cols),
					         "%s%s", cols[0] ? ";" : "", filler_cols[pick]);
				}
				table(domains[i][0], name, comment, cols);
			}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run(const char *dsn, const char *q)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *r = NULL;
	int ok = 0;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, q);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	}
	if (!ok)
		fprintf(stderr, "search_bench: %s\n", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static const mk_caller caller = {"00000000-0000-4000-8000-00000000be0c", "user"};

/* meta.search; the reply (the caller releases it), or MK_E_* with res->msg. */
static mk_err search(mk_rpc_client *cl, const char *q, mk_rpc_result *res)
{
	cJSON *b = cJSON_CreateObject();
	mk_err e;

	cJSON_AddStringToObject(b, "question", q);
	cJSON_AddNumberToObject(b, "budget", BUDGET);
	e = mk_rpc_call(cl, MK_OP_META_SEARCH, "search-bench", &caller, b, 30000, res);
	cJSON_Delete(b);
	return e;
}

/* Ask each question of set once; prints its misses and recall. Returns how many failed. */
static int ask_all(mk_rpc_client *cl, const char *label, const question *set, int nq)
{
	double r1 = 0, r5 = 0, ms = 0;
	int failed = 0, i, j;
	mk_rpc_result res;

	printf("-- %s (%d questions)\n", label, nq);
	for (i = 0; i < nq; i++) {
		const question *x = &set[i];
		int nright = 0, hit1 = 0, hit5 = 0, rank = 0;
		const char *first = "(none)";
		const cJSON *t;
		double t0 = now_ms();
		mk_err e = search(cl, x->q, &res);

		ms += now_ms() - t0;
		if (e != MK_OK) {
			fprintf(stderr, "search_bench: %s: %s\n", x->q, res.msg);
			failed++;
			mk_rpc_result_release(&res);
			continue;
		}
		while (nright < 3 && x->right[nright])
			nright++;
		cJSON_ArrayForEach(t, cJSON_GetObjectItem(res.body, "tables"))
		{
			const char *name = mk_json_str(t, "table");

			if (rank == 0)
				first = name;
			for (j = 0; j < nright; j++)
				if (!strcmp(name, x->right[j])) {
					hit1 += rank < 1;
					hit5 += rank < TOP_K;
				}
			rank++;
		}
		r1 += (double)hit1 / 1;
		r5 += (double)hit5 / (nright < TOP_K ? nright : TOP_K);
		if (!hit1)
			printf("  miss@1: \"%s\" -> %s (want %s)%s\n", x->q, first, x->right[0],
			       hit5 ? "" : ", not in the top 5");
		mk_rpc_result_release(&res);
	}
	printf("%s: recall@1 %.3f  recall@5 %.3f  mean latency %.2f ms  (%d questions, %d "
	       "failed; targets recall@1 >= 0.75, recall@5 >= 0.95)\n",
	       label, r1 / nq, r5 / nq, ms / nq, nq, failed);
	return failed;
}

int main(void)
{
	char admin[512], wh_dsn[512], cat_dsn[512], wh_db[64], cat_db[64], q[200], err[256];
	char listen_env[128], db_env[600], wh_env[600], url[64];
	const char *env[] = {listen_env, db_env, "METADATA_WAREHOUSE_KIND=postgres", wh_env, NULL};
	int port = mt_free_port(), rc = 1, i, synced = 0, failed = 0;
	mk_rpc_client *cl = NULL;
	mk_rpc_result res;
	mt_proc p;

	snprintf(wh_db, sizeof(wh_db), "search_bench_wh_%d", (int)getpid());
	snprintf(cat_db, sizeof(cat_db), "search_bench_cat_%d", (int)getpid());
	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	mt_dsn_for("mark", wh_db, wh_dsn, sizeof(wh_dsn));
	mt_dsn_for("mark", cat_db, cat_dsn, sizeof(cat_dsn));
	build_sql();
	printf("== search: meta.search over a generated warehouse of %d tables in %d schemas, "
	       "%d questions (budget %d)\n",
	       ntables, NDOM, NQ, BUDGET);
	fflush(stdout);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", wh_db);
	if (run(admin, q) != 0)
		return 1;
	snprintf(q, sizeof(q), "CREATE DATABASE %s", cat_db);
	if (run(admin, q) != 0 || run(wh_dsn, sql) != 0)
		goto drop;
	snprintf(listen_env, sizeof(listen_env), "METADATA_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(db_env, sizeof(db_env), "METADATA_DATABASE_URL=%s", cat_dsn);
	snprintf(wh_env, sizeof(wh_env), "METADATA_WAREHOUSE_DSN=%s", wh_dsn);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	if (!(cl = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err)))) {
		fprintf(stderr, "search_bench: %s\n", err);
		goto drop;
	}
	if (mt_proc_start(&p, "metadata-search-bench", "mark-metadata", env) != 0)
		goto drop;
	/* The first sync is one transaction: once a table is found, all are. */
	for (i = 0; i < SYNC_WAIT / 100 && !synced; i++) {
		if (search(cl, "orders", &res) == MK_OK)
			synced = cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "tables")) > 0;
		mk_rpc_result_release(&res);
		if (!synced) {
			if (!mt_proc_alive(&p))
				break;
			mk_sleep_ms(100);
		}
	}
	if (!synced) {
		fprintf(stderr, "search_bench: the catalog was not synced\n");
		mt_proc_dump(&p);
		goto stop;
	}
	failed = ask_all(cl, "the tuning set", questions, NQ);
	failed += ask_all(cl, "the held-out set", heldout, NHELD);
	rc = failed ? 1 : 0;
stop:
	if (mt_proc_stop(&p, SIGTERM, 15000) != 0)
		rc = 1;
drop:
	mk_rpc_client_free(cl);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", wh_db);
	run(admin, q);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", cat_db);
	run(admin, q);
	free(sql);
	return rc;
}
