CREATE TABLE `joined_nodes` (
	`name` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`token` text NOT NULL,
	`joined_at` integer NOT NULL,
	`last_join_at` integer NOT NULL
);
