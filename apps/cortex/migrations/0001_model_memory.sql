CREATE TABLE `model_memory` (
	`key` text PRIMARY KEY NOT NULL,
	`model` text NOT NULL,
	`harness` text NOT NULL,
	`estimated_mb` integer,
	`estimate` text,
	`observed_mb` integer,
	`raised_mb` integer,
	`updated_at` integer NOT NULL
);
