CREATE TABLE `nodes` (
	`name` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`healthy` integer NOT NULL,
	`last_ok_at` integer,
	`discovery` text,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `model_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`type` text NOT NULL,
	`node` text,
	`model` text,
	`duration_ms` real,
	`detail` text
);
--> statement-breakpoint
CREATE INDEX `model_events_at_idx` ON `model_events` (`at`);--> statement-breakpoint
CREATE INDEX `model_events_model_at_idx` ON `model_events` (`model`,`at`);--> statement-breakpoint
CREATE TABLE `request_log` (
	`id` integer PRIMARY KEY NOT NULL,
	`at` integer NOT NULL,
	`request_id` text NOT NULL,
	`model` text NOT NULL,
	`node` text,
	`status` integer NOT NULL,
	`latency_ms` real NOT NULL,
	`ttft_ms` real,
	`prompt_tokens` integer,
	`completion_tokens` integer,
	`stream` integer NOT NULL,
	`cold_start` integer NOT NULL,
	`error_code` text
);
--> statement-breakpoint
CREATE INDEX `request_log_at_idx` ON `request_log` (`at`);--> statement-breakpoint
CREATE INDEX `request_log_model_at_idx` ON `request_log` (`model`,`at`);
