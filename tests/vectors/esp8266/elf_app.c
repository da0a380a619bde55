struct desc { unsigned magic; unsigned sv; unsigned r[2]; char version[32]; char project[32]; char time[16]; char date[16]; char idf[32]; unsigned char sha[32]; unsigned char rest[80]; };
__attribute__((section(".flash.rodata"), used)) const unsigned char pad8[8] = {0};
__attribute__((section(".flash.rodata"), used)) const struct desc esp_app_desc = {0xABCD5432, 0, {0,0}, "1.0.0", "elf_test", "12:00:00", "Nov 29 2026", "v3.4", {0}, {0}};
__attribute__((section(".flash.rodata"), used)) const char payload[] = "payload from an ELF";
__attribute__((section(".dram0.data"), used)) int counter = 7;
__attribute__((section(".iram0.text"), used)) void call_start_cpu(void) { counter++; }
