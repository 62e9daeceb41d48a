/* usbreset /dev/bus/usb/BBB/DDD: reset a USB device (USBDEVFS_RESET), as the hub driver
 * does to recover a device that stopped answering. The lab's reset-CLASS scenarios run
 * it under the kernel's drivers and under usbnetd. */
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc != 2) { fprintf(stderr, "usage: usbreset /dev/bus/usb/BBB/DDD\n"); return 2; }
	int fd = open(argv[1], O_WRONLY);
	if (fd < 0) { perror("open"); return 1; }
	if (ioctl(fd, USBDEVFS_RESET, 0) < 0) { perror("USBDEVFS_RESET"); return 1; }
	close(fd);
	return 0;
}
